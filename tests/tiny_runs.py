"""A tiny character-LM run trained through the command line, for the tests of what reads, resumes or replaces
a run folder (commands, train, checkpoint, config, charlm). Import the fixture by name: ``from tiny_runs
import trained``."""

import hashlib
import os

import pytest

from conftest import TINY


def train_args(data, out, *extra):
    """``rnnlab train charlm`` on ``data`` into ``out``: 20 steps of the TINY model; ``extra`` follows ``--set``."""
    return ["train", "charlm", "--data", data, "--out", out, "--max-steps", "20", "--set", *TINY, *extra]


@pytest.fixture
def trained(tmp_path, text_file):
    """The folder of a finished 20-step charlm run on ``text_file`` (validated at steps 10 and 20)."""
    from rnnlab.cli import main

    out = str(tmp_path / "run")
    assert main(train_args(text_file, out)) == 0
    return out


def snapshot(folder):
    """``{name: sha256}`` of every file in ``folder``: equal snapshots, untouched files."""
    return {name: hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(folder))}
