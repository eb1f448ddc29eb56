"""rnnlab.pen, the sampler's step: the NumPy pen against the model's own torch calls (model.step and
mixture.sample, themselves tested against forward and split_params), step by step and over whole lines."""

import numpy as np
import pytest
import torch

import rnnlab
from rnnlab import writing
from rnnlab.models import HandwritingSynthesizer
from rnnlab.pen import BLOCK, NumpyPen, TorchPen, make_pen


def primed(dtype=torch.float32, layers: int = 3):
    """A small random synthesis network, three lines of texts of 5, 2 and 4 characters, read over 4 points."""
    torch.manual_seed(0)
    model = HandwritingSynthesizer(7, hidden_size=16, num_layers=layers, mixtures=3, gaussians=2).to(dtype).eval()
    text, lengths = torch.randint(0, 7, (3, 5)), torch.tensor([5, 2, 4])
    with torch.inference_mode():
        y, state = model(torch.randn(3, 4, 3, dtype=dtype), model.start(text, lengths))
    return model, state, y[:, -1]


@pytest.mark.parametrize("layers", [1, 3])
def test_the_numpy_pen_follows_the_models_own_step(layers):
    """Fed the same points, the two pens keep the same y (the mixture's parameters) and phi, step after step,
    and draw the same points from the same seed."""
    model, state, y = primed(layers=layers)
    fast = NumpyPen(model, state, y, torch.Generator().manual_seed(2))
    reference = TorchPen(model, state, y, torch.Generator().manual_seed(2))
    points = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        for t in range(BLOCK + 5):  # past the first block of random numbers
            np.testing.assert_allclose(fast.y, reference.y.numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(fast.phi, reference.phi, rtol=1e-5, atol=1e-6)
            drawn = fast.draw(1.0)
            np.testing.assert_allclose(drawn, reference.draw(1.0), rtol=1e-5, atol=1e-5)
            assert drawn.dtype == np.float32 and drawn.shape == (3, 3) and set(np.unique(drawn[:, 2])) <= {0.0, 1.0}
            point = torch.cat([torch.randn(3, 2, generator=points), (torch.rand(3, 1, generator=points) < 0.3)], 1)
            fast.advance(point.numpy())
            reference.advance(point.numpy())
    assert not np.allclose(fast.phi, NumpyPen(model, state, y, points).phi)  # the window did move


def test_numpy_for_a_float32_model_on_the_cpu_torch_otherwise():
    assert isinstance(make_pen(*primed(torch.float32), torch.Generator()), NumpyPen)
    assert isinstance(make_pen(*primed(torch.float64), torch.Generator()), TorchPen)


def test_the_bundled_model_writes_the_same_lines_either_way(monkeypatch):
    """Whole lines of the bundled model from one seed: the NumPy pen's and the torch pen's points agree to a
    hundredth of the data's unit (a pixel of IAM-OnDB's tablet) at every point, and the lines stop together."""
    run = rnnlab.load("builtin:handwriting")
    texts = ["Hello world", "12 March 2026, London", "Quick brown fox"]

    def write():
        generator = torch.Generator().manual_seed(1)
        return writing.write_lines(run.model, run.vocab, texts, 1.5, generator, run.config.stats,
                                   run.config.chars_per_point)

    fast = write()
    monkeypatch.setattr(writing, "make_pen", TorchPen)
    reference = write()
    assert fast.stopped == reference.stopped
    for a, b in zip(fast.lines, reference.lines):
        assert a.shape == b.shape and len(a) > 50
        np.testing.assert_allclose(a, b, atol=1e-2, rtol=0)
