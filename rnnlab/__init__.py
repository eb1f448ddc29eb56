"""rnnlab: train, evaluate and sample recurrent sequence models.

The public API (each has a docstring with shapes and units)::

    run = rnnlab.load("builtin:handwriting")          # or a run folder -> Run
    run.write("Hello world", bias=1.5, seed=1)         # -> Handwriting (.lines, .save("x.svg"), notebook SVG)
    run = rnnlab.train("charlm", "runs/quick", max_steps=300)
    run.sample("ROMEO:", length=200, temperature=0.8)  # -> str
    run.evaluate()                                      # -> {"loss": ..., ...}

``rnnlab.TASKS`` and ``rnnlab.presets(task)`` list what can be trained; the models and cells are the
building blocks, usable on their own.
"""

from .cells import GRUCell, LSTMCell, RNNCell, unroll
from .errors import CheckpointError, ShapeError, TrainingDiverged, TrainingInterrupted, UserError
from .models import HandwritingPredictor, HandwritingSynthesizer, RNNLanguageModel, SequenceClassifier
from .recurrent import Recurrent
from .run import Run, configure, config_toml, load, plot, presets, train
from .tasks import TASKS, Preset, Task
from .version import __version__
from .writing import Chunk, Handwriting, Style

__all__ = [
    "load", "train", "plot", "presets", "configure", "config_toml", "Run", "Handwriting", "Chunk", "Style", "TASKS", "Task",
    "Preset", "GRUCell", "LSTMCell", "RNNCell", "unroll", "Recurrent", "RNNLanguageModel", "SequenceClassifier",
    "HandwritingPredictor", "HandwritingSynthesizer", "UserError", "ShapeError", "CheckpointError",
    "TrainingDiverged", "TrainingInterrupted", "__version__",
]
