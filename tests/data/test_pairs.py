"""Sequence pairs (``rnnlab/data/pairs.py``): the TSV read back exactly and every malformed line as one
error naming the line; the split by source (on the shared Tatoeba file too); the toy targets against
Python's own reversed / sorted / int sums; the curricula as pure functions; vocabularies; and the shifted
decoder inputs and targets of a hand-made batch."""

import numpy as np
import pytest
import torch

from rnnlab import files
from rnnlab.data import pairs as P
from rnnlab.data.text import Vocab
from rnnlab.errors import UserError

from conftest import shared_data

ATTRIBUTION = "CC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #1158250 (Wittydev)"


def write(tmp_path, data: bytes, name: str = "pairs.txt") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# ------------------------------------------------------------------------------------------ reading


def test_a_tsv_with_a_bom_crlf_blank_lines_and_attribution_columns_reads_back_exactly(tmp_path):
    text = (f"Go.\tVa !\t{ATTRIBUTION}\r\n"
            "\r\n"
            "Run!\tCours\u202f!\r\n"
            "   \n"
            "Hi.\t Salut. \ta\t\tb\n")
    path = write(tmp_path, b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert P.read_pairs(path) == [
        P.Pair("Go.", "Va !", (ATTRIBUTION,)),
        P.Pair("Run!", "Cours\u202f!", ()),
        P.Pair("Hi.", " Salut. ", ("a", "", "b")),  # text kept as written; every further column kept
    ]


BAD_LINES = {
    "no tab": (b"Go.\tVa !\nHi. Salut.\n", 2, "no tab"),
    "empty source": (b"Go.\tVa !\n\n\tSalut.\n", 3, "source (column 1) is empty"),
    "blank target": (b"Go.\t  \n", 1, "target (column 2) is empty"),
    "a lone tab": (b"Go.\tVa !\n\t\r\n", 2, "source (column 1) is empty"),
    "not UTF-8": (b"Go.\tVa !\nHi.\tCaf\xe9\n", 2, "not UTF-8 (byte 0xe9 on line 2)"),
    "a NUL byte": (b"Go.\tVa !\nHi.\tSa\x00lut\n", 2, "looks binary"),
}


@pytest.mark.parametrize("case", BAD_LINES)
def test_each_malformed_line_is_one_user_error_naming_the_file_and_the_line(tmp_path, case):
    data, line, reason = BAD_LINES[case]
    path = write(tmp_path, data)
    with pytest.raises(UserError) as e:
        P.read_pairs(path)
    message = str(e.value)
    assert "\n" not in message and path in message and reason in message and f"line {line}" in message


@pytest.mark.parametrize("data", [b"", b"\n\r\n   \n", b"\xef\xbb\xbf"])
def test_a_file_with_no_pairs_is_an_error(tmp_path, data):
    with pytest.raises(UserError, match="holds no pairs"):
        P.read_pairs(write(tmp_path, data))


def test_a_missing_file_and_one_over_the_size_cap_are_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="does not exist"):
        P.read_pairs(str(tmp_path / "absent.txt"))
    monkeypatch.setitem(files.LIMITS, "text", 10)
    with pytest.raises(UserError, match="over the 10 bytes"):
        P.read_pairs(write(tmp_path, b"Go.\tVa !\nHi.\tSalut.\n"))


# ------------------------------------------------------------------------------------------ the split


def many_sources(n: int = 200) -> list:
    """``n`` sources, source i with i % 3 + 1 translations."""
    return [P.Pair(f"sentence {i}", f"phrase {i}.{k}") for i in range(n) for k in range(i % 3 + 1)]


def test_the_split_keeps_every_sources_pairs_together_in_order_and_is_reproducible_by_seed():
    pairs = many_sources()
    train, valid = P.split_by_source(pairs, 0.2, seed=0)
    assert {p.source for p in train}.isdisjoint({p.source for p in valid})
    assert sorted(train + valid, key=pairs.index) == pairs and len(train) + len(valid) == len(pairs)
    assert train == [p for p in pairs if p in train] and valid == [p for p in pairs if p in valid]  # order kept
    assert 20 <= len({p.source for p in valid}) <= 60  # about 40 of the 200 sources
    assert P.split_by_source(pairs, 0.2, seed=0) == (train, valid)
    assert P.split_by_source(pairs, 0.2, seed=1)[1] != valid


def test_a_sources_side_does_not_depend_on_the_other_pairs():
    pairs = many_sources()
    _, valid = P.split_by_source(pairs, 0.3, seed=5)
    _, valid_half = P.split_by_source(pairs[::2], 0.3, seed=5)
    assert {p.source for p in valid_half} <= {p.source for p in valid}


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_a_valid_fraction_outside_0_1_is_an_error(fraction):
    with pytest.raises(UserError, match="strictly between 0 and 1"):
        P.split_by_source(many_sources(), fraction, seed=0)


def test_a_split_that_leaves_a_side_empty_says_what_to_change():
    with pytest.raises(UserError, match="side empty; give more pairs"):
        P.split_by_source([P.Pair("one", "un"), P.Pair("one", "une")], 0.5, seed=0)


def test_the_tatoeba_file_splits_with_no_validation_source_seen_in_training():
    pairs = P.read_pairs(shared_data("translation", "eng-fra.txt"))
    assert len(pairs) == 5000 and len({p.source for p in pairs}) == 2597  # translation/SOURCE.md's counts
    assert pairs[0] == P.Pair("Go.", "Va !", (ATTRIBUTION,))
    train, valid = P.split_by_source(pairs, 0.1, seed=0)
    assert train and valid and len(train) + len(valid) == len(pairs)
    assert not {p.source for p in valid} & {p.source for p in train}
    assert 0.05 < len({p.source for p in valid}) / 2597 < 0.15


# ------------------------------------------------------------------------------------------ toy tasks


@pytest.mark.parametrize("task, rule", [("copy", lambda s: s), ("reverse", lambda s: "".join(reversed(s))),
                                        ("sort", lambda s: "".join(sorted(s)))])
def test_copy_reverse_and_sort_targets_follow_pythons_own(task, rule):
    pairs = P.toy_pairs(task, 300, np.random.default_rng(0), min_length=2, max_length=7)
    assert len(pairs) == 300
    for p in pairs:
        assert p.target == rule(p.source) and 2 <= len(p.source) <= 7 and set(p.source) <= set(P.ALPHABET)
    assert {len(p.source) for p in pairs} == set(range(2, 8))  # every length of the range is drawn
    assert {c for p in pairs for c in p.source} == set(P.ALPHABET)


def test_addition_has_exactly_n_digits_on_each_side_and_the_sum_as_target():
    pairs = P.addition_pairs(500, np.random.default_rng(1), digits=3)
    for p in pairs:
        a, b = p.source.split("+")
        assert len(a) == len(b) == 3 and a[0] != "0" and b[0] != "0" and p.target == str(int(a) + int(b))
    leading = {p.source[0] for p in pairs}
    assert leading == set("123456789")
    assert all(len(p.source.split("+")[0]) == 25 for p in P.addition_pairs(3, np.random.default_rng(0), 25))


def test_toy_pairs_are_reproducible_by_seed_and_differ_across_seeds():
    for task in P.TOY_TASKS:
        first = P.toy_pairs(task, 50, np.random.default_rng(7))
        assert first == P.toy_pairs(task, 50, np.random.default_rng(7))
        assert first != P.toy_pairs(task, 50, np.random.default_rng(8))


def test_toy_pairs_refuses_unknown_tasks_sizes_and_rngs():
    with pytest.raises(UserError, match="the toy tasks are copy, reverse, sort, addition"):
        P.toy_pairs("multiply", 3, np.random.default_rng(0))
    with pytest.raises(UserError, match="takes digits, not max_length"):
        P.toy_pairs("addition", 3, np.random.default_rng(0), max_length=4)
    with pytest.raises(UserError, match="min_length <= max_length"):
        P.toy_pairs("copy", 3, np.random.default_rng(0), min_length=5, max_length=4)
    with pytest.raises(UserError, match="numpy.random.Generator"):
        P.toy_pairs("sort", 3, 42)


# ------------------------------------------------------------------------------------------ curricula


def test_none_always_gives_the_target():
    assert {P.difficulty("none", 9, step, 0, i) for step in (0, 10, 10**6) for i in range(50)} == {9}


def test_mix_covers_every_level_from_the_lowest_to_the_target_and_nothing_else():
    assert {P.difficulty("mix", 9, 0, 3, i) for i in range(500)} == set(range(1, 10))
    assert {P.difficulty("mix", 9, 0, 3, i, lowest=4) for i in range(500)} == set(range(4, 10))


def test_naive_starts_at_the_lowest_and_rises_one_level_per_period_to_the_target():
    levels = [P.difficulty("naive", 5, step, 0, 0, steps_per_level=10) for step in range(100)]
    assert levels == sorted(levels) and levels[0] == 1 and levels[-1] == 5
    assert levels[9:11] == [1, 2] and levels.count(5) == 60
    assert [P.naive_level(s, 5, lowest=3, steps_per_level=10) for s in (0, 10, 20, 30)] == [3, 4, 5, 5]


def test_combined_takes_the_naive_level_or_the_mix_about_one_in_five_from_the_mix():
    naive = P.naive_level(0, 9)  # 1: any other level came from the mix
    levels = [P.difficulty("combined", 9, 0, 0, i) for i in range(4000)]
    from_mix = sum(level != naive for level in levels) / len(levels)
    # the mix gives level 1 too, one time in 9: the share seen is 1/5 x 8/9
    assert abs(from_mix - P.COMBINED_MIX_PROBABILITY * 8 / 9) < 0.02
    assert set(levels) == set(range(1, 10))


def test_difficulty_is_a_pure_function_of_its_arguments():
    for strategy in P.STRATEGIES:
        first = [P.difficulty(strategy, 8, step, 11, i) for step in (0, 1500, 9000) for i in range(40)]
        assert first == [P.difficulty(strategy, 8, step, 11, i) for step in (0, 1500, 9000) for i in range(40)]
    mix = [[P.difficulty("mix", 8, 0, seed, i) for i in range(40)] for seed in (11, 12)]
    assert mix[0] != mix[1]
    with pytest.raises(UserError, match="none, naive, mix, combined"):
        P.difficulty("anti", 8, 0, 0, 0)


def test_curriculum_pairs_use_each_examples_difficulty_and_regenerate_identically():
    step, seed = 2500, 4
    pairs = P.curriculum_pairs("addition", 60, np.random.default_rng(0), "combined", step, seed, digits=6)
    for i, p in enumerate(pairs):
        a, b = p.source.split("+")
        assert len(a) == len(b) == P.difficulty("combined", 6, step, seed, i) and p.target == str(int(a) + int(b))
    assert pairs == P.curriculum_pairs("addition", 60, np.random.default_rng(0), "combined", step, seed, digits=6)
    rows = P.curriculum_pairs("reverse", 60, np.random.default_rng(0), "naive", 1000, seed, min_length=2, max_length=9)
    assert all(2 <= len(p.source) <= 3 and p.target == p.source[::-1] for p in rows)  # naive level 3 at step 1000


# ------------------------------------------------------------------------------ tokens and vocabularies


def test_word_tokens_split_punctuation_off_and_keep_inner_apostrophes_and_hyphens():
    words = P.tokenize("Cours\u202f! I'm here, peut-être.", "word")
    assert words == ["Cours", "!", "I'm", "here", ",", "peut-être", "."]
    assert P.tokenize("Va !", "word", lower=True) == ["va", "!"] and P.tokenize("ab c", "char") == ["a", "b", " ", "c"]
    with pytest.raises(UserError, match="the levels are char, word"):
        P.tokenize("x", "byte")


def test_the_vocabulary_puts_the_specials_first_then_tokens_by_frequency_then_alphabetically():
    vocab = P.pair_vocab(["b a c", "c a", "a d"], "word")
    assert vocab.tokens == ["<pad>", "<bos>", "<eos>", "<unk>", "a", "c", "b", "d"] and vocab.kind == "word"
    assert [vocab.index[t] for t in P.SPECIALS] == [P.PAD_ID, P.BOS_ID, P.EOS_ID, P.UNK_ID] == [0, 1, 2, 3]
    assert P.pair_vocab(["a d", "c a", "b a c"], "word").tokens == vocab.tokens  # order of texts does not matter
    assert P.pair_vocab(["b a c", "c a", "a d"], "word", min_count=2).tokens == [*P.SPECIALS, "a", "c"]
    assert P.pair_vocab(["aab"], "char").tokens == [*P.SPECIALS, "a", "b"]


def test_encode_lays_out_sources_and_shifted_decoder_inputs_and_targets():
    src = P.pair_vocab(["abc", "d"], "char")  # a b c d -> 4 5 6 7
    tgt = P.pair_vocab(["xy", "zq"], "char")  # q x y z -> 4 5 6 7
    batch = P.encode([P.Pair("abc", "xy"), P.Pair("d", "z"), P.Pair("e", "q")], src, tgt, "char")
    assert torch.equal(batch.sources, torch.tensor([[4, 5, 6, 2], [7, 2, 0, 0], [3, 2, 0, 0]]))  # e: <unk>
    assert torch.equal(batch.source_lengths, torch.tensor([4, 2, 2]))
    assert torch.equal(batch.decoder_inputs, torch.tensor([[1, 5, 6], [1, 7, 0], [1, 4, 0]]))
    assert torch.equal(batch.decoder_targets, torch.tensor([[5, 6, 2], [7, 2, 0], [4, 2, 0]]))
    assert torch.equal(batch.target_lengths, torch.tensor([3, 2, 2]))
    # the decoder's input at step t + 1 is its target at step t
    assert torch.equal(batch.decoder_inputs[0, 1:], batch.decoder_targets[0, :-1])
    assert P.decode(batch.decoder_targets[0], tgt, "char") == "xy" and P.decode([1, 7, 2, 5], tgt, "char") == "z"
    cut = batch.batch(torch.tensor([1, 2]))
    assert cut.sources.shape == (2, 2) and cut.decoder_inputs.shape == (2, 2) and len(cut) == 2


def test_encode_refuses_no_pairs_and_a_vocabulary_without_the_specials():
    vocab = P.pair_vocab(["a"], "char")
    with pytest.raises(UserError, match="no pairs"):
        P.encode([], vocab, vocab, "char")
    with pytest.raises(UserError, match="must start with <pad>, <bos>, <eos>, <unk>"):
        P.encode([P.Pair("a", "a")], Vocab(["a"], "char"), vocab, "char")


def test_a_tatoeba_word_batch_decodes_back_to_its_tokens():
    pairs = P.read_pairs(shared_data("translation", "eng-fra.txt"))[:200]
    tgt = P.pair_vocab([p.target for p in pairs], "word")
    batch = P.encode(pairs, P.pair_vocab([p.source for p in pairs], "word"), tgt, "word")
    for p, row in zip(pairs, batch.decoder_targets):
        assert P.decode(row, tgt, "word") == " ".join(P.tokenize(p.target, "word"))
