"""Errors a user can fix. The CLI prints them as one line and exits with status 2.

An ``OSError`` (a folder that is not writable, a full disk) is reported the same way, naming the file.
Anything else that escapes is a bug in rnnlab and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and how to fix it."""


class ShapeError(UserError, ValueError):
    """A tensor of the wrong shape crossed a public boundary."""


class CheckpointError(UserError):
    """A run folder that is missing, corrupted, truncated, or of another task."""


class TrainingDiverged(UserError):
    """Too many consecutive steps had a non-finite loss or gradient."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a training. ``step``: where (None: in the middle of a step); ``resumable``:
    whether the run folder holds a state to continue from with ``--resume``; ``signal``: the signal number."""

    def __init__(self, step: int | None, resumable: bool, signal: int):
        super().__init__(step, resumable, signal)
        self.step, self.resumable, self.signal = step, resumable, signal
