"""rnnlab: train, evaluate and sample recurrent sequence models."""

__version__ = "0.1.0"

from .cells import GRUCell, LSTMCell, RNNCell, unroll  # noqa: E402
from .errors import CheckpointError, ShapeError, TrainingDiverged, UserError  # noqa: E402
from .models import RNNLanguageModel  # noqa: E402
from .recurrent import Recurrent  # noqa: E402

__all__ = [
    "GRUCell", "LSTMCell", "RNNCell", "unroll", "Recurrent", "RNNLanguageModel",
    "UserError", "ShapeError", "CheckpointError", "TrainingDiverged",
]
