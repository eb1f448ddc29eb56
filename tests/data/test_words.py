"""Word corpora (``rnnlab/data/words.py``): the tokens of Zaremba et al. (words plus one ``<eos>`` a line), PTB's
and WikiText-2's published counts, both folder layouts, ``<unk>`` for unseen words, and every bad folder as
one line through ``rnnlab train wordlm``, before anything is written."""

import os

import pytest

from rnnlab.data.text import EOS, Vocab
from rnnlab.data.words import load_corpus, split_paths, tokenize
from rnnlab.errors import UserError

from conftest import fails, shared_data, write_corpus


def test_ptb_counts():
    vocab, ids = load_corpus(shared_data("ptb"))
    assert [ids[s].numel() for s in ("train", "valid", "test")] == [929_589, 73_760, 82_430]
    assert len(vocab) == 10_000
    assert int((ids["test"] == vocab.index["<unk>"]).sum()) == 4_794  # unk tokens already in the text


def test_wikitext2_counts():
    vocab, ids = load_corpus(shared_data("wikitext-2"))
    assert [ids[s].numel() for s in ("train", "valid", "test")] == [2_088_628, 217_646, 245_569]
    assert len(vocab) == 33_278


def test_every_line_ends_with_eos_blank_lines_included():
    assert tokenize("the cat\n\n sat  down \n") == ["the", "cat", EOS, EOS, "sat", "down", EOS]


def test_the_vocabulary_is_the_training_words_in_order_of_first_appearance(tmp_path):
    folder = write_corpus(tmp_path / "c", "b a\nc a <unk>\n", "a zebra\n", "c\n")
    vocab, ids = load_corpus(folder)
    assert vocab.tokens == ["b", "a", EOS, "c", "<unk>"]
    assert ids["train"].tolist() == [0, 1, 2, 3, 1, 4, 2]
    assert ids["valid"].tolist() == [1, 4, 2]  # zebra is <unk>: the vocabulary has one
    with pytest.raises(UserError, match="'zebra'"):  # without <unk>, an unseen word is an error naming it
        load_corpus(folder, Vocab(["a", "c", EOS], "word"), ("valid",))


def test_both_layouts_and_only_the_split_that_is_scored(tmp_path):
    ptb = write_corpus(tmp_path / "ptb", "a\n", "a\n", "a\n", names=("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"))
    assert split_paths(ptb) == {s: os.path.join(ptb, f"ptb.{s}.txt") for s in ("train", "valid", "test")}
    plain = write_corpus(tmp_path / "plain", "a\n", "a\n", "a\n")
    os.remove(os.path.join(plain, "train.txt"))
    assert split_paths(plain, ("test",)) == {"test": os.path.join(plain, "test.txt")}
    with pytest.raises(UserError, match="lacks train.txt; a word corpus needs all three splits"):
        split_paths(plain)
    with pytest.raises(UserError, match="holds neither ptb.train.txt/ptb.valid.txt/ptb.test.txt nor "
                                        "train.txt/valid.txt/test.txt"):
        split_paths(str(tmp_path))


def test_bad_corpora(tmp_path, capsys):
    def refused(folder, *expected):
        fails(capsys, ["train", "wordlm", "--data", str(folder), "--out", str(tmp_path / "out")], *expected)
        assert not os.path.exists(tmp_path / "out")

    refused(tmp_path / "missing", "does not exist")
    (tmp_path / "a-file.txt").write_text("a b\n")
    refused(tmp_path / "a-file.txt", "a-file.txt is not a folder")
    partial = write_corpus(tmp_path / "partial", "a b\n", "a\n", "b\n")
    os.remove(os.path.join(partial, "test.txt"))
    refused(partial, "lacks test.txt")
    refused(write_corpus(tmp_path / "empty", "a b c\n" * 50, "\n\n", "a\n"), "valid.txt is empty")
    refused(write_corpus(tmp_path / "new-words", "a b c\n" * 50, "a b zebra\n", "a\n"), "valid.txt", "'zebra'")
