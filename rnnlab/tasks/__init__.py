"""Tasks: the glue between data, a model, its loss, its metrics and what it generates. Each is a class that
implements the protocol of ``base.Task``; ``TASKS`` is a plain dict of them by name, no registry magic.
"""

from .base import Preset, Task
from .charlm import CharLM
from .classify import Classify
from .handwriting import Prediction
from .synthesis import Synthesis
from .wordlm import WordLM

TASKS: dict[str, type[Task]] = {task.name: task for task in (CharLM, WordLM, Classify, Prediction, Synthesis)}

__all__ = ["TASKS", "Preset", "Task"]
