"""Tasks: the glue between data, a model, its loss, its metrics and its sampling. A plain dict, no registry magic.

Every task module provides ``NAME``, ``Config`` (a TrainConfig dataclass), ``PRESETS``, ``DEFAULT_PRESET``,
``Task`` (data, batches, loss and evaluation for train.py), ``build_model(config, vocab)`` and
``evaluate_run(run, data, split)``. A task that samples also has one of ``default_prime(vocab)`` (text:
``rnnlab sample`` prints from it) or ``write(model, config, points, bias, generator)`` (strokes: ``rnnlab
sample -o`` draws them); the CLI asks which with ``hasattr``.
"""

from . import charlm, classify, handwriting, wordlm

TASKS = {"charlm": charlm, "wordlm": wordlm, "classify": classify, "handwriting": handwriting}
