"""The character LM task (``rnnlab/tasks/charlm.py``): nanoGPT's contiguous 90/10 split, validation characters
the training part lacks, TBPTT epochs, and its command-line paths: bad data files, a prime with characters
the run never saw, the splits it can score.

Learning itself is in test_loop.py, the end-to-end commands in test_commands.py.
"""

import logging
import os

import pytest
import torch

import rnnlab
from rnnlab.config import override
from rnnlab.errors import UserError
from rnnlab.tasks.charlm import CharLM, Config, split_text

from conftest import fails
from tiny_runs import train_args, trained  # noqa: F401 -- trained is a fixture

TEXT = "the quick brown fox jumps over the lazy dog.\nhello world, hello rnn.\n" * 60


def tiny_config(**values):
    base = dict(hidden_size=16, num_layers=1, seq_len=4, batch_size=2, preview_length=0, device="cpu")
    return override(Config(), {**base, **values}, "test")


def test_the_first_ninety_percent_trains_and_the_contiguous_tail_validates():
    assert split_text("abcdefghij", 0.1) == ("abcdefghi", "j")
    assert split_text("abcdefghij", 0.25) == ("abcdefg", "hij")  # int(10 x 0.75) = 7
    text = "abcab" * 18 + "ab" * 3 + "zzz" + "b"  # 100 characters: the last 10 hold a "z" training never saw
    task = CharLM(tiny_config(), text=text)
    assert task.vocab.tokens == ["a", "b", "c"]
    # The 7 known characters of the tail, one row of 7 -> 6 predictions; training: 90 characters in 2 rows.
    assert task.valid.tokens == 6
    assert task.train.rows.tolist() == [task.vocab.encode(text[:45], "t").tolist(),
                                       task.vocab.encode(text[45:90], "t").tolist()]


def test_validation_characters_absent_from_training_are_left_out_with_a_warning(caplog):
    text = TEXT[:900] + "\u00e9" + TEXT[:99]  # 1,000 characters: the tail holds one é
    with caplog.at_level(logging.WARNING, logger="rnnlab"):
        task = CharLM(tiny_config(), text=text)
    assert "validation text has 1 characters absent from the training part ('\u00e9')" in caplog.text
    assert "\u00e9" not in task.vocab.index and task.valid.tokens > 0


def test_a_tail_too_short_to_score_is_refused():
    with pytest.raises(UserError, match=r"the validation part \(10% of the text\) is too short to score"):
        CharLM(tiny_config(), text="a" * 18 + "az")  # the tail "az" keeps one known character


def test_state_is_reset_at_each_epoch_and_carried_within():
    task = CharLM(tiny_config(seq_len=16, batch_size=4), text=TEXT)
    resets = [task.train_batch(s)[1] for s in range(2 * task.steps_per_epoch)]
    assert resets == ([True] + [False] * (task.steps_per_epoch - 1)) * 2
    # Window k + 1 of a row continues where window k stopped (data/text.py's layout).
    (x0, y0), _ = task.train_batch(0)
    (x1, _), _ = task.train_batch(1)
    assert torch.equal(x1[:, 0], y0[:, -1]) and torch.equal(x0[:, 1:], y0[:, :-1])


@pytest.mark.parametrize("content, expected", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    ("na\u00efve caf\u00e9 ".encode("latin-1") * 50, "not UTF-8"),
    (b"too short", "one batch needs"),
])
def test_bad_data_files(tmp_path, capsys, content, expected):
    data = tmp_path / "data.txt"
    data.write_bytes(content)
    fails(capsys, train_args(str(data), str(tmp_path / "out")), expected)
    assert not os.path.exists(tmp_path / "out")


def test_prime_with_unknown_characters_lists_them(trained, capsys):
    fails(capsys, ["sample", trained, "--prime", "the Zebra\u00e9"], "the prime", "'Z'", "'\u00e9'")


def test_a_charlm_run_scores_its_tail_or_a_given_text_and_has_no_other_split(trained, capsys, text_file, tmp_path):
    run = rnnlab.load(trained)
    with pytest.raises(UserError, match="a charlm run has no test split: it validates on the tail of its text"):
        run.evaluate(split="test")
    fails(capsys, ["evaluate", trained, "--split", "all"], "a charlm run has no all split")
    own, whole = run.evaluate(), run.evaluate(text_file)
    assert own["data"] == f"{text_file} (last 10%)" and whole["data"] == text_file
    assert whole["tokens"] > own["tokens"]
    os.rename(text_file, text_file + ".moved")  # the run's data is gone: its own split cannot be read
    fails(capsys, ["evaluate", trained], "the run's training data is not readable", "pass --data FILE")
    assert run.evaluate(text_file + ".moved")["loss"] == pytest.approx(whole["loss"], rel=1e-12)
