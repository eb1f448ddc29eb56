"""The NumPy BPTT oracle (``rnnlab/reference/numpy_rnn.py``) against three references.

1. rnnlab's cells and torch's autograd, on random float64 weights, inputs and initial states: the forward
   outputs and every gradient of ``L = sum(outputs * R) + sum(final_state * S)``.
2. Central finite differences of the oracle's own forward pass, so the oracle is right on its own terms
   and not just in agreement with torch.
3. The real ``min-char-rnn`` preset: its loss and gradients through the charlm task, and two optimiser
   steps through ``train_step`` (Adagrad, element-wise clip) against the oracle's ``adagrad_step``.
"""

import dataclasses
import random

import numpy as np
import pytest
import torch

from rnnlab.cells import GRUCell, LSTMCell, RNNCell, unroll
from rnnlab.data.text import Vocab
from rnnlab.optim import build_optimizer
from rnnlab.reference import numpy_rnn
from rnnlab.tasks.charlm import CharLM
from rnnlab.loop import train_step

BATCH, STEPS, INPUT, HIDDEN = 3, 5, 4, 6
WEIGHT_STD = 0.5         # random weights ~ N(0, 0.5^2): gates neither saturated nor in their linear range
RTOL = 1e-6              # oracle vs autograd: both float64, differing only in the order of the sums
ATOL = 1e-12             # for entries that are zero up to rounding
FORWARD_RTOL = 1e-10     # the forward passes do the same arithmetic, so they agree to rounding
FD_EPS = 1e-6            # central differences: truncation error ~ eps^2, rounding ~ 1e-16 / eps
FD_RTOL, FD_ATOL = 1e-5, 1e-8
FD_COORDS = 5            # random coordinates checked per array
CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}
MIN_CHAR_RNN = CharLM.presets["min-char-rnn"].config

VOCAB = "abcdefg"        # 7 characters
TEXT_LEN = 200           # 90 % trains: 7 windows of 25 at batch 1, enough for the two steps checked
TRAIN_STEPS = 2          # the second Adagrad step divides by sqrt(g1^2 + g2^2): magnitudes count, not just signs
BITING_CLIP = 1e-3       # below the largest gradients of the mean loss, so the element-wise clip acts


def state_names(kind: str) -> tuple:
    return ("h0", "c0") if kind == "lstm" else ("h0",)


def make_problem(kind: str, seed: int = 0):
    """A float64 cell with random weights, and random inputs, initial state and loss weights R, S (as arrays)."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    cell = CELLS[kind](INPUT, HIDDEN).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(randn(*p.shape) * WEIGHT_STD)
    arrays = {name: getattr(cell, name).detach().numpy().copy() for name in numpy_rnn.WEIGHT_NAMES}
    arrays["x"] = randn(BATCH, STEPS, INPUT).numpy()
    for name in state_names(kind):
        arrays[name] = randn(BATCH, HIDDEN).numpy()
    d_outputs = randn(BATCH, STEPS, HIDDEN).numpy()
    d_final = tuple(randn(BATCH, HIDDEN).numpy() for _ in state_names(kind))
    return cell, arrays, d_outputs, d_final


def numpy_forward(kind: str, arrays: dict):
    forward, _ = numpy_rnn.CELLS[kind]
    state = tuple(arrays[n] for n in state_names(kind))
    return forward(arrays, arrays["x"], state if kind == "lstm" else state[0])


def numpy_loss(kind: str, arrays: dict, d_outputs, d_final) -> float:
    """``sum(outputs * R) + sum(final * S)``, so dL/d(outputs) = R and dL/d(final state) = S."""
    outputs, final, _ = numpy_forward(kind, arrays)
    finals = final if kind == "lstm" else (final,)
    return float((outputs * d_outputs).sum() + sum((f * d).sum() for f, d in zip(finals, d_final)))


def numpy_gradients(kind: str, arrays: dict, d_outputs, d_final) -> dict:
    _, backward = numpy_rnn.CELLS[kind]
    _, _, cache = numpy_forward(kind, arrays)
    return backward(d_outputs, d_final if kind == "lstm" else d_final[0], cache)


def check_finite_differences(kind, arrays, d_outputs, d_final, grads, seed=0):
    rng = np.random.default_rng(seed)
    for name, array in arrays.items():
        for index in rng.choice(array.size, size=min(FD_COORDS, array.size), replace=False):
            moved = []
            for sign in (1.0, -1.0):
                copy = array.copy()
                copy.flat[index] += sign * FD_EPS
                moved.append(numpy_loss(kind, {**arrays, name: copy}, d_outputs, d_final))
            numeric = (moved[0] - moved[1]) / (2 * FD_EPS)
            np.testing.assert_allclose(grads[name].flat[index], numeric, rtol=FD_RTOL, atol=FD_ATOL,
                                       err_msg=f"{kind} d{name}[{index}]")


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_forward_matches_the_cells(kind):
    cell, arrays, _, _ = make_problem(kind)
    state = tuple(torch.from_numpy(arrays[n]) for n in state_names(kind))
    with torch.no_grad():
        outputs, final = unroll(cell, torch.from_numpy(arrays["x"]), state if kind == "lstm" else state[0])
    np_outputs, np_final, _ = numpy_forward(kind, arrays)
    np.testing.assert_allclose(np_outputs, outputs.numpy(), rtol=FORWARD_RTOL)
    for ours, theirs in zip(np_final if kind == "lstm" else (np_final,), final if kind == "lstm" else (final,)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=FORWARD_RTOL)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_bptt_matches_autograd(kind):
    cell, arrays, d_outputs, d_final = make_problem(kind)
    x = torch.from_numpy(arrays["x"]).requires_grad_()
    state = tuple(torch.from_numpy(arrays[n]).requires_grad_() for n in state_names(kind))
    outputs, final = unroll(cell, x, state if kind == "lstm" else state[0])
    finals = final if kind == "lstm" else (final,)
    loss = (outputs * torch.from_numpy(d_outputs)).sum() + sum(
        (f * torch.from_numpy(d)).sum() for f, d in zip(finals, d_final))
    names = (*numpy_rnn.WEIGHT_NAMES, "x", *state_names(kind))
    expected = torch.autograd.grad(loss, [getattr(cell, n) for n in numpy_rnn.WEIGHT_NAMES] + [x, *state])

    grads = numpy_gradients(kind, arrays, d_outputs, d_final)
    assert set(grads) == set(names)
    for name, want in zip(names, expected):
        np.testing.assert_allclose(grads[name], want.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"{kind} d{name}")


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_bptt_matches_finite_differences(kind):
    _, arrays, d_outputs, d_final = make_problem(kind, seed=1)
    grads = numpy_gradients(kind, arrays, d_outputs, d_final)
    check_finite_differences(kind, arrays, d_outputs, d_final, grads)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_finite_differences_catch_a_lost_final_state_gradient(kind):
    # A classic BPTT bug: starting the backward loop from dh_next = 0 instead of dL/d(final state).
    _, arrays, d_outputs, d_final = make_problem(kind, seed=1)
    wrong = numpy_gradients(kind, arrays, d_outputs, tuple(np.zeros_like(d) for d in d_final))
    with pytest.raises(AssertionError):
        check_finite_differences(kind, arrays, d_outputs, d_final, wrong)


# ------------------------------------------------------------------------------------- the min-char-rnn preset

def make_lm(config=None, seed: int = 0):
    """The ``min-char-rnn`` preset's model in float64, its charlm task on a random 7-character text."""
    config = config or MIN_CHAR_RNN
    rng = random.Random(seed)
    text = "".join(rng.choice(VOCAB) for _ in range(TEXT_LEN))
    task = CharLM(config, Vocab.from_text(VOCAB), text=text)
    with torch.random.fork_rng():  # the preset's init draws from the global generator; leave it as found
        torch.manual_seed(seed)
        model = CharLM.build_model(config, task.vocab).double()
    return config, task, model


def numpy_params(model) -> dict:
    return {name: p.detach().numpy().copy() for name, p in model.named_parameters()}


def test_char_lm_matches_the_preset_loss_and_gradients():
    _, task, model = make_lm()
    batch, reset = task.train_batch(0)
    x, y = batch
    assert reset and x.shape == (1, 25), "min-char-rnn trains on one row of 25 characters from a zero state"
    loss, state, _ = task.loss(model, batch, None)
    loss.backward()

    np_loss, grads, h_final = numpy_rnn.char_lm_loss(numpy_params(model), x.numpy(), y.numpy())
    np.testing.assert_allclose(np_loss, loss.item(), rtol=RTOL)
    np.testing.assert_allclose(h_final, state[0].detach().numpy(), rtol=FORWARD_RTOL)  # state: (layers, B, H)
    assert set(grads) == set(model.state_dict())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"d{name}")


@pytest.mark.parametrize("clip_value", [MIN_CHAR_RNN.clip_value, BITING_CLIP])
def test_adagrad_steps_match_train_step(clip_value):
    config = dataclasses.replace(MIN_CHAR_RNN, clip_value=clip_value)
    config, task, model = make_lm(config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, config)
    assert isinstance(optimizer, torch.optim.Adagrad)
    np_params = numpy_params(model)
    memory = {name: np.zeros_like(value) for name, value in np_params.items()}
    carry, h, clipped = None, None, False
    for step in range(TRAIN_STEPS):
        batch, _ = task.train_batch(step)
        # The state carries across windows on both sides (truncated BPTT), so step 2 starts from step 1's h_T.
        np_loss, grads, h = numpy_rnn.char_lm_loss(np_params, *(b.numpy() for b in batch), h)
        clipped |= any(np.abs(g).max() > clip_value for g in grads.values())
        numpy_rnn.adagrad_step(np_params, grads, memory, config.lr, config.eps, config.clip_value)

        loss, carry, *_ = train_step(model, task, batch, carry, optimizer, params, config)
        np.testing.assert_allclose(np_loss, loss, rtol=RTOL, err_msg=f"step {step} loss")
        for name, p in model.named_parameters():
            np.testing.assert_allclose(np_params[name], p.detach().numpy(), rtol=RTOL, atol=ATOL,
                                       err_msg=f"step {step} {name}")
    if clip_value == BITING_CLIP:
        assert clipped, "the small clip never acted, so this case would not test clipping"
