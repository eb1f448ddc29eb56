"""Training in a torchrun job of two processes (gloo on loopback): every task trains as one process does at
the same batch_size (losses and weights equal up to the order of float sums), rank 0 alone writes, a run
resumes from two processes to one and from one to two, a rank that dies stops the job with one line and
the last checkpoint intact (and under --max-restarts the job resumes by itself), a rank that stops
answering times out, and two "nodes" (two torchrun launches with --nnodes 2) train as one process does."""

import json
import os
import shutil
import socket
import subprocess
import sys

from safetensors.torch import load_file
import pytest
import torch

from rnnlab import distributed
from rnnlab.checkpoint import load_train_state
from rnnlab.errors import UserError
from rnnlab.tasks.pen import PenTask

from distributed_cases import COMMON, FAULTS, LM, LONG_STEPS, STEPS, TASKS, make_data, poison_step, train

JOB = os.path.join(os.path.dirname(__file__), "distributed_job.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
LAUNCH_SECONDS = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(root, *actions, nproc=2, extra=(), timeout=LAUNCH_SECONDS, wait=True):
    """``torchrun --nproc-per-node nproc distributed_job.py root actions...`` on a free loopback port (or
    ``extra``'s rendezvous); the finished process, or the running one when not ``wait``."""
    where = ["--master-addr", "127.0.0.1", "--master-port", str(free_port())] if not extra else []
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), *where, *extra, JOB,
           str(root), *actions]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)


def records(folder) -> list:
    with open(os.path.join(folder, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def same_training(mine, reference, rel=1e-4):
    """Two run folders trained alike: the same records (losses to ``rel``) and weights (to 1e-5)."""
    a, b = records(mine), records(reference)
    assert [(r["step"], r["split"]) for r in a] == [(r["step"], r["split"]) for r in b]
    for x, y in zip(a, b):
        assert x["loss"] == pytest.approx(y["loss"], rel=rel), (x, y)
    weights, expected = load_file(os.path.join(mine, "model.safetensors")), load_file(os.path.join(reference, "model.safetensors"))
    assert weights.keys() == expected.keys()
    for name in weights:
        torch.testing.assert_close(weights[name], expected[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """One torchrun launch of two processes: every task, a resume from one process to two, and the first
    half of a run that one process then finishes; beside them, the same trainings in this process."""
    root = tmp_path_factory.mktemp("distributed")
    make_data(str(root))
    train("charlm", str(root), str(root / "one-to-two"), max_steps=STEPS // 2)  # one process: the first half
    done = torchrun(root, *TASKS, f"resume:one-to-two:{STEPS}", "half:two-to-one", "poisoned")
    assert done.returncode == 0, done.stderr[-3000:]
    train("charlm", str(root), str(root / "two-to-one"), resume=True, max_steps=STEPS)  # one process: the second half
    for task in TASKS:
        train(task, str(root), str(root / "one" / task))
    pure = PenTask.train_batch
    poison_step(5)
    try:
        train("handwriting", str(root), str(root / "one" / "poisoned"))
    finally:
        PenTask.train_batch = pure
    return root, done


@pytest.mark.parametrize("task", TASKS)
def test_two_processes_train_as_one_does(job, task):
    root, _ = job
    same_training(root / "two" / task, root / "one" / task)
    assert {r["world_size"] for r in records(root / "two" / task) if r["split"] == "train"} == {2}
    assert {r["world_size"] for r in records(root / "one" / task) if r["split"] == "train"} == {1}


def test_a_non_finite_step_in_one_process_is_skipped_by_every_process(job):
    root, done = job
    same_training(root / "two" / "poisoned", root / "one" / "poisoned")
    assert [r["skipped"] for r in records(root / "two" / "poisoned") if r["split"] == "train"] == [0, 1, 1, 1]
    assert "step 5: non-finite loss or gradient, step skipped" in done.stderr


def test_rank_0_alone_writes_and_logs(job):
    root, done = job
    assert done.stderr.count(f"step {STEPS}/{STEPS}  valid") == len(TASKS) + 2  # rank 0's lines: one per training
    for task in TASKS:
        assert len(records(root / "two" / task)) == len(records(root / "one" / task))  # no record twice
        assert sorted(os.listdir(root / "two" / task)) == sorted(os.listdir(root / "one" / task))


def test_a_run_resumes_from_one_process_to_two_and_from_two_to_one(job):
    root, _ = job
    same_training(root / "one-to-two", root / "one" / "charlm")
    same_training(root / "two-to-one", root / "one" / "charlm")


def test_each_process_takes_its_block_of_rows_even_of_a_short_batch():
    batch = {"inputs": torch.arange(10).view(5, 2), "state": (torch.zeros(2, 5, 3),)}
    first, second = (distributed.World(rank, 2).rows(batch) for rank in (0, 1))
    assert first["inputs"].tolist() == [[0, 1], [2, 3]] and second["inputs"].tolist() == [[4, 5], [6, 7], [8, 9]]
    assert distributed.World(1, 2).rows(batch["state"], dim=1)[0].shape == (2, 3, 3)
    assert [list(distributed.World(r, 3).part(7)) for r in range(3)] == [[0, 1], [2, 3], [4, 5, 6]]


def test_a_batch_the_processes_cannot_share_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(UserError, match="batch_size 3 is the global batch and must divide among the 2 processes"):
        train("charlm", str(tmp_path), str(tmp_path / "run"), batch_size=3)
    assert distributed.from_env() == distributed.World(0, 2, 0, 0)


@pytest.fixture(scope="module")
def faults(job):
    """The charlm run of the fault cases, trained in this process for reference."""
    root, _ = job
    reference = root / "faults-reference"
    train("charlm", str(root), str(reference), max_steps=LONG_STEPS, **FAULTS)
    return root, reference


def error_lines(stderr: str) -> list:
    return [line for line in stderr.splitlines() if line.startswith("rnnlab: error:")]


def test_a_rank_that_dies_stops_the_job_with_one_line_and_the_checkpoint_intact(faults):
    root, reference = faults
    shutil.rmtree(root / "killed", ignore_errors=True)
    done = torchrun(root, "kill:10")  # rank 1 dies as it starts step 11 (after the checkpoint of step 8)
    assert done.returncode != 0
    [line] = error_lines(done.stderr)  # from rank 0, the survivor
    assert "another process of the job failed or stopped answering near step 10" in line
    assert "the last checkpoint in" in line and "(step 8) is intact: continue with --resume" in line
    saved = load_train_state(str(root / "killed" / "train_state.pt"))
    assert saved["step"] == 8
    resumed = torchrun(root, f"resume:killed:{LONG_STEPS}")  # --resume, as the line says
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    same_training(root / "killed", reference)


def test_under_max_restarts_the_job_resumes_by_itself(faults):
    root, reference = faults
    shutil.rmtree(root / "killed", ignore_errors=True)
    done = torchrun(root, "kill:10", extra=["--max-restarts", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                                            f"127.0.0.1:{free_port()}", "--rdzv-id", "restarted"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from step 8 of 24" in done.stderr
    same_training(root / "killed", reference)


def test_a_rank_that_stops_answering_times_out(faults):
    root, _ = faults
    shutil.rmtree(root / "stalled", ignore_errors=True)
    done = torchrun(root, "stall:10", timeout=120)  # dist_timeout 20 s: well before the test's own limit
    assert done.returncode != 0
    [line] = error_lines(done.stderr)
    assert "stopped answering near step 10" in line and "Timed out" in line and "(step 8) is intact" in line


def test_two_nodes_train_as_one_process_does(job, tmp_path):
    root, _ = job
    endpoint = ["--nnodes", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}",
                "--rdzv-id", "rnnlab-test"]
    shutil.copy(root / "text.txt", tmp_path / "text.txt")
    nodes = [torchrun(tmp_path, "charlm", nproc=1, extra=endpoint, wait=False) for _ in range(2)]
    outputs = [node.communicate(timeout=LAUNCH_SECONDS) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], [err[-2000:] for _, err in outputs]
    same_training(tmp_path / "two" / "charlm", root / "one" / "charlm")
    assert {r["world_size"] for r in records(tmp_path / "two" / "charlm") if r["split"] == "train"} == {2}


def test_train_nproc_starts_the_job_itself(job, tmp_path):
    root, _ = job
    out = tmp_path / "charlm"
    sets = [f"{k}={v}" for k, v in {**COMMON, **LM}.items() if k not in ("max_steps", "seed")]
    done = subprocess.run([sys.executable, "-m", "rnnlab", "train", "charlm", "--nproc", "2", "--data",
                           str(root / "text.txt"), "--out", str(out), "--max-steps", str(STEPS), "--seed", "5",
                           "--set", *sets], capture_output=True, text=True, env=ENV, timeout=LAUNCH_SECONDS)
    assert done.returncode == 0, done.stderr[-3000:]
    same_training(out, root / "one" / "charlm")
    assert {r["world_size"] for r in records(out) if r["split"] == "train"} == {2}
    failed = subprocess.run([sys.executable, "-m", "rnnlab", "train", "charlm", "--nproc", "2", "--out", str(out),
                             "--set", "batch_size=3"], capture_output=True, text=True, env=ENV, timeout=LAUNCH_SECONDS)
    assert failed.returncode == 2 and "already holds a charlm run" in failed.stderr


def test_sigterm_to_train_nproc_saves_and_says_so_once_without_a_traceback(job, tmp_path):
    import signal
    import time

    root, _ = job
    out = tmp_path / "stopped"
    sets = [f"{k}={v}" for k, v in {**COMMON, **LM}.items() if k not in ("max_steps", "seed", "eval_interval")]
    running = subprocess.Popen([sys.executable, "-m", "rnnlab", "train", "charlm", "--nproc", "2", "--data",
                                str(root / "text.txt"), "--out", str(out), "--max-steps", "1000000", "--set", *sets,
                                "eval_interval=0", "save_interval=5"], stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + LAUNCH_SECONDS
    while not (out / "train_state.pt").exists() and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    running.send_signal(signal.SIGTERM)
    _, stderr = running.communicate(timeout=LAUNCH_SECONDS)
    assert running.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    [line] = [line for line in stderr.splitlines() if line.startswith("rnnlab:")]
    assert "the run is saved: continue it with rnnlab train charlm --out" in line and "Traceback" not in stderr
    step = int(line.split("interrupted at step ")[1].split(";")[0])
    assert load_train_state(str(out / "train_state.pt"))["step"] == step > 0
