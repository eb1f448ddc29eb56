"""rnnlab.data.order: the order in which a task visits its items, a pure function of the global step."""

import numpy as np
import torch

from rnnlab.data.order import shuffled_batch


def test_length_buckets_visit_every_line_once_per_epoch_with_less_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(100, 2000, 1000).tolist()
    batches = [shuffled_batch(step, 1000, 32, 7, lengths) for step in range(32)]
    seen = torch.cat(batches).tolist()
    assert sorted(seen) == list(range(1000))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    plain = [shuffled_batch(step, 1000, 32, 7) for step in range(32)]
    assert sorted(torch.cat(plain).tolist()) == list(range(1000))  # without lengths too: each item once
    padded_plain = sum(len(b) * max(lengths[i] for i in b) for b in plain)
    assert padded < 0.7 * padded_plain, (padded, padded_plain)
    # a pure function of the step, and the next epoch is another order
    assert torch.equal(shuffled_batch(5, 1000, 32, 7, lengths), batches[5])
    assert not torch.equal(shuffled_batch(32 + 5, 1000, 32, 7, lengths), batches[5])


def test_without_lengths_an_epoch_is_one_permutation_of_the_seed_plus_the_epoch():
    # 10 items in batches of 4: 3 steps per epoch, the last batch short; epoch e is randperm(seed + e) cut in order
    for epoch in (0, 1):
        order = torch.randperm(10, generator=torch.Generator().manual_seed(7 + epoch))
        got = [shuffled_batch(3 * epoch + k, 10, 4, 7) for k in range(3)]
        assert [len(b) for b in got] == [4, 4, 2]
        assert torch.equal(torch.cat(got), order)
