"""Handwriting prediction (Graves 2013 §4): a network that writes by predicting the next pen offset.

The data, batches, loss and nats per line are ``pen.py``'s; this task adds the prediction network (a stack of
LSTMs with skip connections, ``models.HandwritingPredictor``) and unconditional sampling: ``rnnlab sample
RUN -o out.svg`` draws what it writes when nothing tells it what to write. ``synthesis.py`` is the network
that writes a given text.

Models: ``model(offsets (B, T, 3), state=None) -> (mixture parameters (B, T, 1 + 6M), state)``, the state a
tuple with one LSTM ``(h, c)`` per layer.
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserError
from ..mixture import sample as sample_mixture
from ..models import HandwritingPredictor
from ..writing import Handwriting
from .base import Preset
from .pen import PenConfig, PenTask


@dataclass
class Config(PenConfig):
    peepholes: bool = False         # Graves' cells have them; off runs on cuDNN / oneDNN (a documented deviation)


PRESETS = {
    "graves-prediction": Preset(Config(
        hidden_size=400, num_layers=3, mixtures=20, optimizer="rmsprop", lr=1e-4, alpha=0.95, momentum=0.9,
        eps=1e-4, centered=True, clip=0.0, batch_size=32, epochs=30, eval_interval=0, log_interval=20,
    ), "Graves 2013 §4: 3x400 LSTM with skip connections, 20 mixtures, centred RMSProp (decay 0.95, momentum "
       "0.9, lr 1e-4, eps 1e-4, eqs. 38-41), derivative clipping in the model"),
}


class Prediction(PenTask):
    """Graves' prediction network on lines of pen offsets (module docstring)."""

    name = "handwriting"
    Config = Config
    presets = PRESETS
    default_preset = "graves-prediction"
    generates = "strokes"
    model_signature = "model(offsets (B, T, 3), state=None) -> (mixture parameters (B, T, 1 + 6M), state)"

    @classmethod
    def build_model(cls, config: Config, vocab) -> HandwritingPredictor:
        return HandwritingPredictor(config.hidden_size, config.num_layers, config.mixtures, config.peepholes,
                                    config.clip_gradients)

    def preview(self, model, step: int = 0, folder=None) -> str:
        """Draw an unconditional sample into the run's samples folder."""
        if folder is None or not self.config.sample_points:
            return ""
        generator = torch.Generator(next(model.parameters()).device).manual_seed(self.config.seed)
        path = folder.sample_path(step)
        self.sample_strokes(model, self.config, self.config.sample_points, 0.0, generator).save(path)
        return f"wrote {path}"

    @classmethod
    @torch.inference_mode()
    def sample_strokes(cls, model, config: Config, points: int, bias: float, generator) -> Handwriting:
        """Sample ``points`` offsets unconditionally, in the data's own units."""
        if points < 1:
            raise UserError(f"length {points}: a drawing needs at least 1 point")
        model.eval()
        device = next(model.parameters()).device
        x = torch.zeros(1, 1, 3, device=device)
        state, out = None, []
        for _ in range(points):
            y, state = model(x, state)
            x = sample_mixture(y[:, -1], bias=bias, generator=generator).view(1, 1, 3)
            out.append(x[0, 0])
        offsets = torch.stack(out).double().cpu().numpy()
        return Handwriting([""], [config.stats.denormalise(offsets).astype(np.float32)], [False])
