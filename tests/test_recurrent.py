"""``Recurrent``: the cell-by-cell stack equals torch's fused one on copied weights; shape errors say how to fix them."""

import pytest
import torch
from torch import nn

from rnnlab.data.text import Vocab
from rnnlab.errors import ShapeError
from rnnlab.models import RNNLanguageModel
from rnnlab.recurrent import Recurrent

ATOL = 1e-5
INPUT, HIDDEN = 6, 8
TORCH_STACK = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN, "rnn_relu": nn.RNN}


def torch_stack(cell: str, num_layers: int) -> nn.Module:
    extra = {"nonlinearity": "relu"} if cell == "rnn_relu" else {}
    return TORCH_STACK[cell](INPUT, HIDDEN, num_layers, batch_first=True, **extra)


def cells_state_dict(fused_state: dict, num_layers: int) -> dict:
    """Rename torch's ``weight_ih_l{k}`` (``rnn.`` prefix dropped) to ``cells.{k}.weight_ih``."""
    return {
        f"cells.{k}.{name}": fused_state[f"{name}_l{k}"]
        for k in range(num_layers)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    }


def random_state(cell: str, num_layers: int, batch: int):
    h = torch.randn(num_layers, batch, HIDDEN)
    return (h, torch.randn(num_layers, batch, HIDDEN)) if cell == "lstm" else h


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "rnn_relu"])
@pytest.mark.parametrize("num_layers", [2, 3])
@pytest.mark.parametrize("with_state", [False, True])
def test_cells_stack_equals_torch(cell, num_layers, with_state):
    torch.manual_seed(num_layers)
    ref = torch_stack(cell, num_layers)
    fused = Recurrent(cell, INPUT, HIDDEN, num_layers, impl="torch")
    unrolled = Recurrent(cell, INPUT, HIDDEN, num_layers, impl="cells")
    assert fused.fused and not unrolled.fused
    fused.rnn.load_state_dict(ref.state_dict())
    unrolled.load_state_dict(cells_state_dict(ref.state_dict(), num_layers))

    batch, steps = 3, 7
    x = torch.randn(batch, steps, INPUT)
    state = random_state(cell, num_layers, batch) if with_state else None
    out_ref, state_ref = ref(x, state)
    for layer in (fused, unrolled):
        out, final = layer(x, state)
        torch.testing.assert_close(out, out_ref, atol=ATOL, rtol=0)
        if cell == "lstm":
            assert isinstance(final, tuple) and len(final) == 2
            torch.testing.assert_close(final[0], state_ref[0], atol=ATOL, rtol=0)
            torch.testing.assert_close(final[1], state_ref[1], atol=ATOL, rtol=0)
        else:
            torch.testing.assert_close(final, state_ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_init_state_is_zeros_in_torch_layout(cell):
    layer = Recurrent(cell, INPUT, HIDDEN, num_layers=2)
    state = layer.init_state(5)
    parts = state if cell == "lstm" else (state,)
    assert len(parts) == (2 if cell == "lstm" else 1)
    for p in parts:
        assert torch.equal(p, torch.zeros(2, 5, HIDDEN))
    # Passing the zero state is the same as passing None.
    x = torch.randn(5, 4, INPUT)
    torch.testing.assert_close(layer(x, state)[0], layer(x, None)[0], atol=0, rtol=0)


@pytest.mark.parametrize("impl", ["torch", "cells"])
def test_lstm_forget_bias_on_every_layer(impl):
    torch.manual_seed(0)
    H = HIDDEN
    layer = Recurrent("lstm", INPUT, H, num_layers=3, forget_bias=1.0, impl=impl)
    for k in range(3):
        if impl == "torch":
            b_ih, b_hh = getattr(layer.rnn, f"bias_ih_l{k}"), getattr(layer.rnn, f"bias_hh_l{k}")
        else:
            b_ih, b_hh = layer.cells[k].bias_ih, layer.cells[k].bias_hh
        assert torch.equal(b_ih[H : 2 * H], torch.ones(H)), k
        assert torch.equal(b_hh[H : 2 * H], torch.zeros(H)), k
        # Only the forget block is touched: the input, cell and output gates keep torch's random init.
        assert b_ih[:H].std() > 0.01 and b_ih[2 * H :].std() > 0.01


def test_forget_bias_zero_initialises_both_impls_alike():
    torch.manual_seed(0)
    H = HIDDEN
    fused = Recurrent("lstm", INPUT, H, forget_bias=0.0, impl="torch")
    unrolled = Recurrent("lstm", INPUT, H, forget_bias=0.0, impl="cells")
    fused_zeroed = bool((fused.rnn.bias_ih_l0[H : 2 * H] == 0).all())
    cells_zeroed = bool((unrolled.cells[0].bias_ih[H : 2 * H] == 0).all())
    assert fused_zeroed and cells_zeroed


def test_language_model_forget_bias_survives_uniform_init():
    # RNNLanguageModel re-initialises every parameter, then must restore the forget-gate bias.
    torch.manual_seed(0)
    H = HIDDEN
    model = RNNLanguageModel(11, "lstm", H, num_layers=2, forget_bias=1.0, init="uniform", init_scale=0.08)
    for k in range(2):
        assert torch.equal(getattr(model.rnn.rnn, f"bias_ih_l{k}")[H : 2 * H], torch.ones(H))
        assert torch.equal(getattr(model.rnn.rnn, f"bias_hh_l{k}")[H : 2 * H], torch.zeros(H))
    assert model.decoder.weight.abs().max() <= 0.08


def test_min_char_rnn_init_draws_weights_from_a_narrow_normal_and_zeroes_biases():
    # min-char-rnn: Wxh, Whh, Why = randn * 0.01, biases zero.
    from rnnlab.tasks.charlm import CharLM

    config = CharLM.presets["min-char-rnn"].config
    assert (config.init, config.init_scale) == ("normal", 0.01)
    torch.manual_seed(0)
    model = CharLM.build_model(config, Vocab(list("abcdefghij"), "char"))
    weights = [p for p in model.parameters() if p.dim() >= 2]
    biases = [p for p in model.parameters() if p.dim() == 1]
    assert weights and biases and all(torch.count_nonzero(b) == 0 for b in biases)
    drawn = torch.cat([w.detach().flatten() for w in weights])
    assert drawn.numel() > 10_000 and abs(drawn.mean()) < 5e-4 and drawn.std().item() == pytest.approx(0.01, rel=0.03)


@pytest.mark.parametrize("impl", ["torch", "cells"])
def test_two_dimensional_input_names_expected_and_received_shape(impl):
    layer = Recurrent("gru", 8, HIDDEN, impl=impl)
    with pytest.raises(ShapeError) as err:
        layer(torch.randn(4, 8))
    msg = str(err.value)
    assert "(B, T, 8)" in msg and "(4, 8)" in msg
    assert "unsqueeze(-1)" in msg


@pytest.mark.parametrize("impl", ["torch", "cells"])
def test_wrong_feature_size(impl):
    layer = Recurrent("lstm", 8, HIDDEN, impl=impl)
    with pytest.raises(ShapeError) as err:
        layer(torch.randn(4, 5, 7))
    msg = str(err.value)
    assert "(B, T, 8)" in msg and "(4, 5, 7)" in msg and "last dimension is 7" in msg


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("impl", ["torch", "cells"])
def test_time_major_input_with_a_state_says_transpose(cell, impl):
    batch, steps = 3, 5
    layer = Recurrent(cell, 8, HIDDEN, num_layers=2, impl=impl)
    state = layer.init_state(batch)
    with pytest.raises(ShapeError) as err:
        layer(torch.randn(steps, batch, 8), state)
    msg = str(err.value)
    assert "time-major" in msg and "transpose" in msg and "(5, 3, 8)" in msg
    # The transposed input is what the layer wanted.
    out, _ = layer(torch.randn(steps, batch, 8).transpose(0, 1), state)
    assert out.shape == (batch, steps, HIDDEN)


@pytest.mark.parametrize("impl", ["torch", "cells"])
def test_batch_mismatch_with_state(impl):
    layer = Recurrent("lstm", 8, HIDDEN, impl=impl)
    state = layer.init_state(3)
    with pytest.raises(ShapeError) as err:
        layer(torch.randn(4, 6, 8), state)
    msg = str(err.value)
    assert "batch size 4" in msg and "batch of 3" in msg and "state=None" in msg
    assert "time-major" not in msg


def test_language_model_rejects_one_hot_input():
    model = RNNLanguageModel(10, "gru", hidden_size=8, num_layers=1)
    one_hot = torch.nn.functional.one_hot(torch.randint(0, 10, (2, 5)), 10).float()
    with pytest.raises(ShapeError) as err:
        model(one_hot)
    msg = str(err.value)
    assert "(B, T)" in msg and "(2, 5, 10)" in msg and "token ids" in msg


def test_empty_sequence_is_a_shape_error():
    with pytest.raises(ShapeError, match="T >= 1"):
        Recurrent("rnn", 8, HIDDEN)(torch.randn(2, 0, 8))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="cell must be one of"):
        Recurrent("transformer", 8, HIDDEN)
    with pytest.raises(ValueError, match="peepholes exist only"):
        Recurrent("gru", 8, HIDDEN, peepholes=True)
    with pytest.raises(ValueError, match="no peepholes"):
        Recurrent("lstm", 8, HIDDEN, peepholes=True, impl="torch")
    # auto picks the cells when peepholes are asked for, torch's kernel otherwise.
    assert not Recurrent("lstm", 8, HIDDEN, peepholes=True).fused
    assert Recurrent("lstm", 8, HIDDEN).fused


def test_time_major_token_ids_with_a_state_name_the_ids_shape():
    from rnnlab.models import RNNLanguageModel

    model = RNNLanguageModel(11, hidden_size=6, num_layers=1, embedding_size=4)
    state = model.init_state(3)
    with pytest.raises(ShapeError) as err:
        model(torch.zeros(5, 3, dtype=torch.long), state)
    msg = str(err.value)
    assert "tokens has shape (5, 3)" in msg and "time-major" in msg and "transpose" in msg


@pytest.mark.parametrize("impl", ["torch", "cells"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "rnn_relu"])
def test_step_by_step_equals_the_whole_sequence(cell, impl):
    torch.manual_seed(0)
    layer = Recurrent(cell, 5, 7, num_layers=3, forget_bias=1.0, impl=impl).eval()
    x = torch.randn(2, 6, 5)
    expected, expected_state = layer(x)
    state, outputs = None, []
    for t in range(x.size(1)):
        out, state = layer.step(x[:, t], state)
        outputs.append(out)
    torch.testing.assert_close(torch.stack(outputs, 1), expected, atol=1e-6, rtol=1e-5)
    for a, b in zip(state if cell == "lstm" else [state], expected_state if cell == "lstm" else [expected_state]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "rnn_relu"])
def test_calls_of_one_step_equal_the_whole_sequence_with_gradients(cell):
    # A (B, 1, F) call takes the single-cell kernels (as sampling does); it must agree with the fused
    # whole-sequence call in outputs, final state and weight gradients.
    torch.manual_seed(0)
    layer = Recurrent(cell, 5, 7, num_layers=2, forget_bias=1.0).double()
    x = torch.randn(2, 6, 5, dtype=torch.float64)
    expected, _ = layer(x)
    expected.square().sum().backward()
    whole = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    state, outputs = None, []
    for t in range(x.size(1)):
        out, state = layer(x[:, t : t + 1], state)
        outputs.append(out)
    stepped = torch.cat(outputs, 1)
    stepped.square().sum().backward()
    torch.testing.assert_close(stepped, expected, atol=1e-12, rtol=1e-10)
    for a, p in zip(whole, layer.parameters()):
        torch.testing.assert_close(p.grad, a, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "rnn_relu"])
def test_the_path_torch_compile_traces_equals_the_fused_one_with_gradients(cell):
    # Under torch.compile (the compile key) a fused stack steps torch's cell kernels itself (_kernel_by_step;
    # a CPU tanh/ReLU stack keeps elman.py's layer, which Dynamo traces); run that path eagerly here
    # (compiling is kept out of the suite) against the usual one: nn.LSTM/GRU, elman.py's layer.
    torch.manual_seed(0)
    layer = Recurrent(cell, INPUT, HIDDEN, num_layers=2, forget_bias=1.0).double()
    x = torch.randn(3, 6, INPUT, dtype=torch.float64)
    state = tuple(s.double() for s in random_state(cell, 2, 3)) if cell == "lstm" else random_state(cell, 2, 3).double()
    runs = []
    for run in (layer, lambda x, state: layer._by_layer(x, state, layer._kernel_by_step)):
        layer.zero_grad()
        out, final = run(x, state)
        (out.square().sum() + sum(f.sum() for f in (final if cell == "lstm" else [final]))).backward()
        runs.append([out, *(final if cell == "lstm" else [final]), *(p.grad.clone() for p in layer.parameters())])
    for fused, stepped in zip(*runs):
        torch.testing.assert_close(stepped, fused, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("embedding_size", [0, 4])
def test_language_model_step_equals_forward(embedding_size):
    from rnnlab.models import RNNLanguageModel

    torch.manual_seed(0)
    model = RNNLanguageModel(9, hidden_size=6, num_layers=2, embedding_size=embedding_size, dropout=0.5).eval()
    tokens = torch.randint(0, 9, (3, 5))
    logits, _ = model(tokens)
    state = None
    for t in range(5):
        step_logits, state = model.step(tokens[:, t], state)
        torch.testing.assert_close(step_logits, logits[:, t], atol=1e-6, rtol=1e-5)


def masked_reference(layer: Recurrent, p: float, seed: int):
    """torch's own stack on copies of ``layer``'s weights with each W_hh times the DropConnect mask
    ``weights()`` draws after ``torch.manual_seed(seed)`` (one draw per layer, in order), and those masks."""
    import copy

    torch.manual_seed(seed)
    masks = [nn.functional.dropout(torch.ones_like(w), p) for w in layer.rnn._flat_weights[1::4]]
    reference = copy.deepcopy(layer.rnn)
    with torch.no_grad():
        for k, mask in enumerate(masks):
            getattr(reference, f"weight_hh_l{k}").mul_(mask)
    return reference, masks


@pytest.mark.parametrize("cell, path", [("lstm", "torch"), ("gru", "torch"), ("rnn", "elman"),
                                        ("lstm", "lstm_bf16"), ("lstm", "by_step")])
def test_weight_drop_is_the_stack_on_masked_recurrent_weights(cell, path, monkeypatch):
    # DropConnect (AWD-LSTM): in training, every path (torch.lstm/torch.gru on the weight list, elman.py's CPU
    # layer, lstm_bf16.py's layer, the cell kernels torch.compile traces) runs on W_hh * mask, and W_hh's
    # gradient is the masked weight's times the mask; in evaluation nothing is dropped.
    from rnnlab import recurrent

    p = 0.4
    if path == "lstm_bf16":
        monkeypatch.setattr(recurrent, "bf16_lstm_applies", lambda x, hidden: True)  # float64, no autocast
    if path == "by_step":
        monkeypatch.setattr(recurrent, "is_compiling", lambda: True)
    torch.manual_seed(0)
    layer = Recurrent(cell, INPUT, HIDDEN, num_layers=2, weight_drop=p).double().train()
    x = torch.randn(3, 6, INPUT, dtype=torch.float64)
    state = tuple(s.double() for s in random_state(cell, 2, 3)) if cell == "lstm" else random_state(cell, 2, 3).double()
    finals = lambda final: list(final) if cell == "lstm" else [final]
    torch.manual_seed(7)
    out, final = layer(x, state)
    (out.square().sum() + sum(f.sum() for f in finals(final))).backward()
    reference, masks = masked_reference(layer, p, seed=7)
    assert all(0.2 < (m == 0).double().mean() < 0.6 for m in masks)  # 80 entries each: about p dropped
    expected, expected_final = reference(x, state)
    (expected.square().sum() + sum(f.sum() for f in finals(expected_final))).backward()
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=1e-10)
    for a, b in zip(finals(final), finals(expected_final)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    for (name, param), ref in zip(layer.rnn.named_parameters(), reference.parameters()):
        want = ref.grad * masks[int(name[-1])] if name.startswith("weight_hh") else ref.grad
        torch.testing.assert_close(param.grad, want, atol=1e-12, rtol=1e-10)
    layer.eval()
    torch.testing.assert_close(layer(x, state)[0], layer.rnn(x, state)[0], atol=1e-12, rtol=1e-10)


def test_weight_drop_draws_a_new_mask_each_call_and_is_checked():
    torch.manual_seed(0)
    layer = Recurrent("lstm", INPUT, HIDDEN, num_layers=1, weight_drop=0.5).train()
    x = torch.randn(2, 4, INPUT)
    outputs = []
    for _ in range(3):  # each call from the stack's own W_hh: its graph is new, the module's weights untouched
        out, _ = layer(x)
        out.sum().backward()
        outputs.append(out.detach())
        assert layer.rnn._flat_weights[1] is layer.rnn.weight_hh_l0
    assert not torch.equal(outputs[0], outputs[1])
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="weight_drop must be in"):
            Recurrent("lstm", INPUT, HIDDEN, weight_drop=bad)
    with pytest.raises(ValueError, match="hand-written cells"):
        Recurrent("lstm", INPUT, HIDDEN, peepholes=True, weight_drop=0.2)
