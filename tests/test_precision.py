"""bf16 training (``rnnlab/precision.py``): the hand-written cells and the mixture head under autocast against
fp32 with stated tolerances, the parts kept in fp32 kept there exactly, and a training step whose weights,
optimiser state, loss, carried state and checkpoint stay fp32; a CPU without bf16 is refused in one line."""

import pytest
import torch
from safetensors import safe_open

from rnnlab import precision
from rnnlab.attention import Window, encode_text
from rnnlab.cells import GRUCell, LSTMCell, RNNCell, unroll
from rnnlab.mixture import MixtureHead, sequence_nll, split_params
from rnnlab.models import HandwritingSynthesizer
from rnnlab.tasks.charlm import CharLM

from conftest import fails
from tiny_runs import train_args
from test_loop import TEXT, run, tiny_config



@pytest.fixture(autouse=True)
def any_cpu_trains_bf16(monkeypatch):
    """bf16 runs on any CPU, emulated where it has no bf16 instructions: slower (which is why training refuses
    it there), with numbers inside the same tolerances. So these checks run everywhere, refusal turned off."""
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)


# Except for nn.LSTM: oneDNN has no bf16 LSTM primitive on such a CPU ("could not create a primitive descriptor").
needs_bf16_cpu = pytest.mark.skipif(not precision.cpu_has_bf16(),
                                    reason="nn.LSTM does not run in bf16 on a CPU without bf16 instructions")


def bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


# bf16 keeps 8 significant bits: each rounded input is off by up to 2^-9 relative. Over 50 steps of a
# 64-unit cell the outputs (|h| <= 1) moved by at most 6e-3 when measured; 2e-2 leaves room and still fails
# for a cell whose gates were read in the wrong order or whose state were rounded to bf16 and fed back.
CELL_TOLERANCE = 2e-2


@pytest.mark.parametrize("make", [lambda: LSTMCell(30, 64, peepholes=True), lambda: GRUCell(30, 64),
                                  lambda: RNNCell(30, 64)], ids=["lstm-peepholes", "gru", "rnn"])
def test_cells_under_bf16_match_fp32(make):
    torch.manual_seed(0)
    cell = make()
    with torch.no_grad():
        for name in ("weight_ci", "weight_cf", "weight_co"):
            if hasattr(cell, name):
                getattr(cell, name).uniform_(-0.5, 0.5)  # live peepholes, not their zero init
    x = torch.randn(8, 50, 30)
    reference, _ = unroll(cell, x)
    with bf16():
        outputs, _ = unroll(cell, x)
    error = (outputs.float() - reference).abs().max().item()
    assert 0 < error < CELL_TOLERANCE  # 0 would mean autocast never reached the matmuls


def test_mixture_likelihood_is_fp32_under_bf16():
    """The head's matmul runs in bf16; the density after it in fp32, so a line's nats move by < 1e-3 relative
    (measured 7e-5: only the 121 outputs of the head are rounded, once)."""
    torch.manual_seed(0)
    head = MixtureHead(64, 20)
    features = torch.randn(4, 100, 64)
    targets = torch.cat([torch.randn(4, 100, 2) * 0.5, torch.bernoulli(torch.full((4, 100, 1), 0.1))], dim=-1)
    reference = sequence_nll(split_params(head(features))[1], targets)
    with bf16():
        y = head(features)
        raw, params = split_params(y)
        nll = sequence_nll(params, targets)
    assert y.dtype == torch.bfloat16 and params.log_pi.dtype == torch.float32 and nll.dtype == torch.float32
    relative = ((nll - reference).abs() / reference.abs()).max().item()
    assert 0 < relative < 1e-3


def test_window_runs_in_fp32_under_bf16():
    """kappa sums every step's move: the window ignores autocast, so it is the fp32 window to the last bit."""
    torch.manual_seed(0)
    window = Window(32, gaussians=5, chars_per_step=0.05)
    onehot = encode_text(torch.randint(0, 10, (3, 12)), torch.tensor([12, 7, 3]), 10)
    h, kappa = torch.randn(3, 32), torch.rand(3, 5) * 4
    expected = window(h, kappa, onehot)
    with bf16():
        got = window(h, kappa, onehot)
    for e, g in zip(expected, got):
        assert g.dtype == torch.float32 and torch.equal(e, g)


@needs_bf16_cpu
def test_the_synthesis_network_under_bf16_steps_through_the_recorded_loop(monkeypatch):
    """Under autocast the synthesis network leaves window_loop.py (fp32 only) for the recorded loop: layer 1 in
    bf16, the window in fp32. Its output stays near fp32's, and the gradients reach layer 1."""
    torch.manual_seed(0)
    model = HandwritingSynthesizer(10, hidden_size=32, num_layers=2, mixtures=3, gaussians=2, chars_per_step=0.1)
    x, text, lengths = torch.randn(3, 40, 3), torch.randint(0, 10, (3, 8)), torch.tensor([8, 5, 3])
    reference, _ = model(x, model.start(text, lengths))
    calls, recorded = [], model._recorded_loop
    monkeypatch.setattr(model, "_recorded_loop", lambda *a: calls.append(1) or recorded(*a))
    with bf16():
        y, state = model(x, model.start(text, lengths))
        y.float().square().mean().backward()
    assert calls == [1] and y.dtype == torch.bfloat16 and state.kappa.dtype == torch.float32
    assert model.first.weight_ih.grad is not None and model.first.weight_ih.grad.abs().sum() > 0
    error = (y.float() - reference).abs().max().item() / reference.abs().max().item()
    assert 0 < error < 5e-2


@needs_bf16_cpu
def test_a_bf16_step_keeps_weights_state_loss_and_checkpoint_fp32(tmp_path):
    config = tiny_config(max_steps=40, eval_interval=20, precision="bf16")
    out, model, summary = run(tmp_path, config, "bf16")
    state = torch.load(f"{out}/train_state.pt", weights_only=True)
    assert all(t.dtype == torch.float32 for t in state["model"].values())
    moments = [v for s in state["optimizer"]["state"].values() for v in s.values() if v.dim()]
    assert moments and all(t.dtype == torch.float32 for t in moments)
    assert all(t.dtype == torch.float32 for t in state["carry"])  # nn.LSTM hands back bf16 (h, c) under autocast
    with safe_open(f"{out}/model.safetensors", "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F32"}
    # It learns as fp32 does: the same 40 steps from the same seed end within a few percent.
    _, _, fp32 = run(tmp_path, tiny_config(max_steps=40, eval_interval=20), "fp32")
    assert summary["skipped_steps"] == 0
    assert summary["best_valid_loss"] == pytest.approx(fp32["best_valid_loss"], rel=0.05)
    assert summary["best_valid_loss"] != fp32["best_valid_loss"]


@needs_bf16_cpu
def test_bf16_charlm_loss_matches_fp32_on_the_same_weights():
    config = tiny_config()
    task = CharLM(config, text=TEXT)
    torch.manual_seed(0)
    model = CharLM.build_model(config, task.vocab)
    batch, _ = task.train_batch(0)
    reference, _, _ = task.loss(model, batch, None)
    with bf16():
        loss, state, _ = task.loss(model, batch, None)
    assert loss.dtype == torch.float32
    assert 0 < abs(loss.item() - reference.item()) < 1e-2 * reference.item()


def test_a_cpu_without_bf16_is_refused_in_one_line(tmp_path, text_file, capsys, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    out = tmp_path / "run"
    fails(capsys, train_args(text_file, str(out), "precision=bf16"), "precision bf16 needs a CPU with bf16",
          "precision=fp32")
    assert not out.exists()


def test_an_unknown_precision_names_the_choices(tmp_path, text_file, capsys):
    fails(capsys, train_args(text_file, str(tmp_path / "run"), "precision=fp16"), "precision", "fp32, bf16")


def test_the_cpu_elman_layer_trains_under_bf16(tmp_path):
    """elman.py's hand-written backward runs under the forward's autocast state (bf16 activations meet fp32
    weights there), and learns as fp32 does."""
    config = tiny_config(max_steps=40, eval_interval=20, cell="rnn", precision="bf16")
    _, model, summary = run(tmp_path, config, "rnn-bf16")
    _, _, fp32 = run(tmp_path, tiny_config(max_steps=40, eval_interval=20, cell="rnn"), "rnn-fp32")
    assert summary["skipped_steps"] == 0 and all(p.dtype == torch.float32 for p in model.parameters())
    assert summary["best_valid_loss"] == pytest.approx(fp32["best_valid_loss"], rel=0.05)
