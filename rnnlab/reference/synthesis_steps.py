"""Graves' synthesis network the straightforward way: every layer advanced one step at a time, in one loop.

This is how most public implementations run it, and how §5 reads: at each step t, layer 1, then the window,
then layers 2 and 3, then the output. It shares ``HandwritingSynthesizer``'s weights (torch's LSTM cells on
the same tensors), so it is the reference the fast model is tested against (tests/test_models.py) and the
baseline (a) of ``benchmarks/handwriting_step.py``. The fast model runs only layer 1 and the window in its
step loop and layers 2.. over the whole sequence at once; the numbers must not change.
"""

import torch

from ..attention import encode_text


def synthesis_forward(model, x: torch.Tensor, text: torch.Tensor, lengths: torch.Tensor):
    """``model`` a ``HandwritingSynthesizer``; same arguments and outputs as its forward from a zero state:
    mixture parameters ``(B, T, 1 + 6M)`` and the window weights ``(B, T, U + 1)``."""
    batch = x.size(0)
    onehot = encode_text(text, lengths, model.alphabet_size).to(x.dtype)
    zeros = torch.zeros(batch, model.hidden_size, dtype=x.dtype, device=x.device)
    first = (zeros, zeros)
    upper = [(zeros, zeros) for _ in model.upper]
    kappa = torch.zeros(batch, model.window.gaussians, dtype=x.dtype, device=x.device)
    w = torch.zeros(batch, model.alphabet_size, dtype=x.dtype, device=x.device)
    outputs, phis = [], []
    for x_t in x.unbind(1):
        first = model.first(torch.cat([x_t, w], dim=-1), first)
        w, kappa, phi = model.window(first[0], kappa, onehot)
        below, hs = first[0], [first[0]]
        for k, layer in enumerate(model.upper):
            lstm = layer.rnn
            upper[k] = torch.lstm_cell(torch.cat([x_t, w, below], dim=-1), upper[k], lstm.weight_ih_l0,
                                       lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
            below = upper[k][0]
            hs.append(below)
        outputs.append(model.head(torch.cat(hs, dim=-1)))
        phis.append(phi)
    return torch.stack(outputs, dim=1), torch.stack(phis, dim=1)
