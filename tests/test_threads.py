"""threads.py: the free cores (cores less the load), OMP_NUM_THREADS honoured, the caller's count restored;
``--threads`` on the commands and the ``threads`` key in a training."""

import json
import os

import pytest
import torch

import rnnlab
from rnnlab import threads as th
from rnnlab.cli import main
from rnnlab.tasks.charlm import CharLM

from conftest import TINY, fails


@pytest.mark.parametrize("load, expected", [(0.0, 4), (1.2, 3), (2.6, 1), (9.0, 1)])
def test_the_free_cores_are_the_cores_less_the_load(monkeypatch, load, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(os, "getloadavg", lambda: (load, 0.0, 0.0))
    assert th.free_cores() == expected


def test_omp_num_threads_wins_over_the_load_and_the_count_is_restored(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert th.default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    monkeypatch.setattr(th, "free_cores", lambda: 2)
    assert th.default_threads() == 2
    torch.set_num_threads(1)
    with th.threads():
        assert torch.get_num_threads() == 2
    with th.threads(3):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == 1


class _Counting(CharLM):
    """The char-LM task, noting torch's thread count at every step."""

    seen = []

    def loss(self, model, batch, state):
        self.seen.append(torch.get_num_threads())
        return super().loss(model, batch, state)


def test_a_training_uses_its_threads_key_and_gives_the_count_back(tmp_path, text_file, monkeypatch):
    monkeypatch.setitem(rnnlab.TASKS._loaders, "charlm", lambda: _Counting)  # TASKS imports on lookup
    monkeypatch.setattr(_Counting, "seen", [])
    out = str(tmp_path / "run")
    assert main(["train", "charlm", "--data", text_file, "--out", out, "--max-steps", "3", "--threads", "2",
                 "--set", *TINY]) == 0
    assert _Counting.seen == [2, 2, 2] and torch.get_num_threads() == 1
    assert json.load(open(os.path.join(out, "config.json")))["config"]["threads"] == 2
    run = rnnlab.train("charlm", str(tmp_path / "api"), data=text_file, max_steps=2, threads=3,
                       **{k: v for k, v in (item.split("=") for item in TINY)})
    assert _Counting.seen[-2:] == [3, 3] and run.config.threads == 3 and torch.get_num_threads() == 1


def test_sampling_takes_one_thread_unless_told(tmp_path, text_file, monkeypatch):
    run = rnnlab.train("charlm", str(tmp_path / "run"), data=text_file, max_steps=2,
                       **{k: v for k, v in (item.split("=") for item in TINY)})
    seen = []
    sampler = type(run.model).sampler

    def spied(model, state):  # generation's step, reporting the threads it runs on
        step = sampler(model, state)
        return lambda tokens: seen.append(torch.get_num_threads()) or step(tokens)

    monkeypatch.setattr(type(run.model), "sampler", spied)
    torch.set_num_threads(2)
    run.sample(length=2, seed=1)
    run.sample(length=2, seed=1, threads=3)
    assert seen == [1, 1, 3, 3] and torch.get_num_threads() == 2
    torch.set_num_threads(1)
    with pytest.raises(rnnlab.UserError, match="threads must be between 1 and 1024, got 0"):
        run.sample(length=2, threads=0)


def test_a_thread_count_out_of_range_is_one_line(capsys, text_file, tmp_path):
    fails(capsys, ["evaluate", "builtin:handwriting", "--threads", "0"], "--threads must be between 1 and 1024, got 0")
    fails(capsys, ["train", "charlm", "--data", text_file, "--out", str(tmp_path / "x"), "--threads", "5000"],
          "--threads must be between 1 and 1024, got 5000")
    with pytest.raises(rnnlab.UserError, match="threads must be at most 1,024, got 5,000"):
        rnnlab.configure("charlm", threads=5000)
