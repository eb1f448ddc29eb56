import os

import pytest
import torch

# The test models are tiny: a second OpenMP thread only adds synchronisation, and on a shared 2-core
# machine a busy neighbour can make two-thread steps 10-100x slower. One thread keeps the suite steady.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")  # rnnlab's default rule (threads.py) and every child process follow it

TINY = ["hidden_size=16", "num_layers=1", "seq_len=8", "batch_size=4", "eval_interval=10", "log_interval=5",
        "preview_length=20"]


def tiny_charlm(folder, steps: int = 30, seed: int = 3) -> str:
    """A char-LM run of ``steps`` steps on a small repeated text, trained into ``folder``/quick in seconds
    (one train loss every 5 steps, one validation every 10: a metrics.jsonl with both); returns its path."""
    import rnnlab

    text = folder / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog.\nhello world, hello rnn.\n" * 60, encoding="utf-8")
    rnnlab.train("charlm", str(folder / "quick"), data=str(text), max_steps=steps, seed=seed, hidden_size=16,
                 num_layers=1, seq_len=8, batch_size=4, eval_interval=10, log_interval=5, preview_length=0)
    return str(folder / "quick")


def check_resume_is_bit_identical(task: str, tmp_path, **keys) -> None:
    """Six steps of ``task`` in one go equal three, then a resume to six: every weight, bit for bit."""
    import rnnlab

    keys = {**keys, "max_steps": 6, "eval_interval": 3}
    whole = rnnlab.train(task, str(tmp_path / "whole"), **keys)
    rnnlab.train(task, str(tmp_path / "half"), **{**keys, "max_steps": 3})
    halves = rnnlab.train(task, str(tmp_path / "half"), resume=True, max_steps=6)
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, halves.model.state_dict()[name]), name


def shared_data(*parts) -> str:
    """A path under ../shared/data ($RNNLAB_SHARED_DATA overrides); the test is skipped when it is absent."""
    root = os.environ.get("RNNLAB_SHARED_DATA") or os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
    path = os.path.join(root, *parts)
    if not os.path.exists(path):
        pytest.skip(f"{path} is absent: these tests read the shared datasets (set RNNLAB_SHARED_DATA to their folder)")
    return path


@pytest.fixture
def text_file(tmp_path):
    """A small UTF-8 text: a few repeated English lines (about 4k characters)."""
    path = tmp_path / "text.txt"
    path.write_text("the quick brown fox jumps over the lazy dog.\nhello world, hello rnn.\n" * 60, encoding="utf-8")
    return str(path)


def write_corpus(folder, train, valid, test, names=("train.txt", "valid.txt", "test.txt")):
    os.makedirs(folder, exist_ok=True)
    for name, text in zip(names, (train, valid, test)):
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write(text)
    return str(folder)


def fails(capsys, argv, *expected):
    """Run the CLI: exit status 2 and one ``rnnlab: error:`` line on stderr holding each of ``expected``."""
    from rnnlab.cli import main

    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnlab: error: "), err
    for text in expected:
        assert text in err[0], err[0]
    return err[0]
