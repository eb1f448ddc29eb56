"""Tasks: the glue between data, a model, its loss, its metrics and what it generates. Each is a class that
implements the protocol of ``base.Task``; ``TASKS`` maps each name to its class, no registry magic.

``TASKS`` imports a task's module the first time its class is asked for: a command that reads one run (say,
``rnnlab write``) loads that run's task and not the four others (about 0.1 s of start-up saved). Its names
are known without importing anything, so the command line's parser never loads a task.
"""

from collections.abc import Mapping

from .base import Preset, Task


def _charlm():
    from .charlm import CharLM
    return CharLM


def _wordlm():
    from .wordlm import WordLM
    return WordLM


def _classify():
    from .classify import Classify
    return Classify


def _handwriting():
    from .handwriting import Prediction
    return Prediction


def _synthesis():
    from .synthesis import Synthesis
    return Synthesis


def _recognize():
    from .recognize import Recognize
    return Recognize


def _seq2seq():
    from .seq2seq import Seq2SeqTask
    return Seq2SeqTask


class _Tasks(Mapping):
    """A read-only mapping of task names to classes, each class imported when first looked up."""

    def __init__(self, loaders: dict):
        self._loaders = loaders

    def __getitem__(self, name: str) -> type[Task]:
        task = self._loaders[name]()
        assert task.name == name, (task.name, name)
        return task

    def __contains__(self, name) -> bool:  # Mapping's would import the task to find out
        return name in self._loaders

    def __iter__(self):
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)

    def __repr__(self) -> str:
        return f"TASKS({', '.join(self._loaders)})"


TASKS: Mapping[str, type[Task]] = _Tasks({"charlm": _charlm, "wordlm": _wordlm, "classify": _classify,
                                          "handwriting": _handwriting, "synthesis": _synthesis,
                                          "recognize": _recognize, "seq2seq": _seq2seq})

__all__ = ["TASKS", "Preset", "Task"]
