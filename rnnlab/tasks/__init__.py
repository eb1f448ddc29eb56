"""Tasks: the glue between data, a model, its loss, its metrics and its sampling. A plain dict, no registry magic."""

from . import charlm, classify, handwriting, wordlm

TASKS = {"charlm": charlm, "wordlm": wordlm, "classify": classify, "handwriting": handwriting}
