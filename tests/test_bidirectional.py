"""Bidirectional stacks over padded batches: the reversal within lengths, and a padded line = the line alone
(the recogniser's test runs the same function through the whole model)."""

import torch
from torch import nn

from rnnlab.bidirectional import reversal, reverse, run


def test_the_reversal_reverses_each_line_within_its_length_and_undoes_itself():
    index = reversal(torch.tensor([3, 1, 4]), 4)
    assert index.tolist() == [[2, 1, 0, 3], [0, 1, 2, 3], [3, 2, 1, 0]]
    x = torch.randn(3, 4, 2)
    torch.testing.assert_close(reverse(reverse(x, index), index), x)


def test_the_stack_is_torchs_bidirectional_lstm_on_each_line_alone():
    torch.manual_seed(0)
    forwards = nn.ModuleList([nn.LSTM(3, 4, batch_first=True), nn.LSTM(8, 4, batch_first=True)])
    backwards = nn.ModuleList([nn.LSTM(3, 4, batch_first=True), nn.LSTM(8, 4, batch_first=True)])
    reference = nn.LSTM(3, 4, 2, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for layer in range(2):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(reference, f"{name}_l{layer}").copy_(getattr(forwards[layer], f"{name}_l0"))
                getattr(reference, f"{name}_l{layer}_reverse").copy_(getattr(backwards[layer], f"{name}_l0"))
    lengths = torch.tensor([5, 2, 7])
    x = torch.randn(3, 7, 3)
    out = run(forwards, backwards, x, lengths, nn.Identity())
    for i, n in enumerate(lengths.tolist()):
        alone, _ = reference(x[i : i + 1, :n])
        torch.testing.assert_close(out[i, :n], alone[0], rtol=1e-5, atol=1e-6)
