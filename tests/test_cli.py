"""The ``rnnlab`` entry point (``rnnlab/cli.py``): parsing, usage errors as one line, exit codes, and how
each kind of failure ends: a user error, an out-of-memory, an ``OSError``, a bug (traceback kept), Ctrl-C and
SIGTERM (with the line that says how to go on), a closed pipe.

The sub-commands themselves are tested end to end in test_commands.py.
"""

import io
import os
import signal
import subprocess
import sys

import pytest
import torch

import rnnlab
import rnnlab.commands
from rnnlab.cli import main
from rnnlab.errors import TrainingInterrupted
from rnnlab.folder import RunFolder

from conftest import fails
from tiny_runs import train_args, trained  # noqa: F401 -- trained is a fixture


def test_python_dash_m_runs_without_traceback_on_bad_input(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rnnlab", "train", "charlm", "--data", str(tmp_path / "missing.txt"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"rnnlab: error: data file {tmp_path / 'missing.txt'} does not exist; " \
                                  "give the path of a UTF-8 text file"
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("argv, expected", [
    (["sample", "RUN", "--length", "x"], "argument --length: invalid int value: 'x' (see rnnlab sample --help)"),
    (["train", "charlm", "--out"], "argument --out: expected one argument (see rnnlab train --help)"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["plot", "RUN", "--foo"], "unrecognized arguments: --foo (see rnnlab plot --help)"),
    (["gradients", "--cell", "gru", "extra", "-x"], "unrecognized arguments: extra -x (see rnnlab gradients --help)"),
    (["presets", "telepathy"], "argument task: invalid choice: 'telepathy'"),
    (["config"], "the following arguments are required: task (see rnnlab config --help)"),
    (["config", "charlm", "--max-steps", "5"], "unrecognized arguments: --max-steps 5 (see rnnlab config --help)"),
])
def test_usage_errors_are_one_line_too(argv, expected, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnlab: error: ") and expected in err[0], err


def test_train_help_names_the_presets_and_config_commands(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train", "--help"])
    assert exit.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps the description
    assert "rnnlab presets [TASK]" in shown and "rnnlab config TASK" in shown and "--config reads it back" in shown


def test_repeated_set_flags_all_apply(tmp_path, capsys, text_file):
    fails(capsys, ["train", "charlm", "--data", text_file, "--out", str(tmp_path / "out"), "--set", "hidden_size=0",
                   "--set", "lr=0.1"], "hidden_size must be at least 1")


def test_an_allocation_the_machine_cannot_make_is_one_line_and_writes_nothing(tmp_path, text_file):
    # 4 x 65,536 x 65,601 float32 LSTM weights (the largest width a config may ask for): 64 GiB, in a process
    # limited to 8 GiB of address space, so the allocation fails on any machine instead of swapping.
    out = tmp_path / "out"
    limit = "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30)); "
    code = limit + "from rnnlab.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, "train", "charlm", "--data", text_file, "--out", str(out),
                           "--set", "hidden_size=65536"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    errors = [line for line in done.stderr.splitlines() if line.startswith("rnnlab:")]  # besides the data's log line
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(errors) == 1, done.stderr
    assert errors[0].startswith("rnnlab: error: out of memory (asked for 64.0 GiB); lower batch_size, hidden_size")
    assert not out.exists()


@pytest.mark.parametrize("error, expected", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.10 GiB total capacity)"),
     "out of memory (asked for 20.00 GiB); lower"),
    (MemoryError(), "out of memory; lower batch_size"),
])
def test_out_of_memory_on_a_gpu_or_in_python_is_one_line(monkeypatch, capsys, error, expected):
    def run_out(args):
        raise error

    monkeypatch.setattr(rnnlab.commands, "plot", run_out)
    fails(capsys, ["plot", "RUN"], expected)


def test_other_runtime_errors_still_surface(monkeypatch):
    def broken(args):
        raise RuntimeError("a bug in rnnlab")

    monkeypatch.setattr(rnnlab.commands, "plot", broken)
    with pytest.raises(RuntimeError, match="a bug in rnnlab"):
        main(["plot", "RUN"])


def test_an_os_error_while_writing_is_one_line(trained, capsys, tmp_path, monkeypatch):
    import rnnlab.draw

    def refuse(path, write):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(rnnlab.draw, "atomic_write", refuse)
    fails(capsys, ["plot", trained, "-o", str(tmp_path / "p.png")], "Permission denied", "p.png")


def test_interrupts_and_closed_pipes_end_quietly(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    def closed_pipe(args):
        raise BrokenPipeError

    monkeypatch.setattr(rnnlab.commands, "plot", interrupted)
    assert main(["plot", "RUN"]) == 130
    assert capsys.readouterr().err == "rnnlab: interrupted\n"  # no --resume hint: nothing here trains
    monkeypatch.setattr(rnnlab.commands, "plot", closed_pipe)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)  # main closes it: nothing more to say down a closed pipe
    assert main(["plot", "RUN"]) == 0  # rnnlab sample ... | head
    assert stderr.closed


@pytest.mark.parametrize("error, status, expected", [
    (TrainingInterrupted(13, True, signal.SIGINT), 130,
     "rnnlab: interrupted at step 13; the run is saved: continue it with rnnlab train charlm --out 'my runs/a' --resume"),
    (TrainingInterrupted(None, True, signal.SIGINT), 130,
     "rnnlab: interrupted; the run is saved: continue it with rnnlab train charlm --out 'my runs/a' --resume"),
    (TrainingInterrupted(40, True, signal.SIGTERM), 143,
     "rnnlab: interrupted at step 40; the run is saved: continue it with rnnlab train charlm --out 'my runs/a' --resume"),
    (TrainingInterrupted(None, False, signal.SIGTERM), 143,
     "rnnlab: interrupted before the run's first checkpoint; nothing was saved (a run it was to replace is kept)"),
])
def test_an_interrupted_training_says_what_was_saved_and_how_to_go_on(monkeypatch, capsys, error, status, expected):
    def stopped(args):
        raise error

    monkeypatch.setattr(rnnlab.commands, "train", stopped)
    capsys.readouterr()
    assert main(["train", "charlm", "--out", "my runs/a"]) == status  # 128 + the signal, as a shell reports it
    assert capsys.readouterr().err == expected + "\n"


def test_sigterm_during_training_exits_143_and_the_hinted_command_resumes(tmp_path, capsys, text_file, monkeypatch):
    from rnnlab.tasks.charlm import CharLM

    loss = CharLM.loss

    def terminated_at_step_12(self, model, batch, state):
        self.losses = getattr(self, "losses", 0) + 1
        if self.losses == 13:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` does, in the middle of step 12
        return loss(self, model, batch, state)

    out = str(tmp_path / "run")
    monkeypatch.setattr(CharLM, "loss", terminated_at_step_12)
    capsys.readouterr()
    assert main(train_args(text_file, out)) == 143
    err = capsys.readouterr().err.strip().splitlines()
    hint = f"rnnlab: interrupted at step 13; the run is saved: continue it with rnnlab train charlm --out {out} --resume"
    assert err[-1] == hint
    monkeypatch.undo()
    assert main(hint.split("continue it with rnnlab ")[1].split()) == 0
    records, damaged = RunFolder(out).read_metrics()
    assert not damaged and max(r["step"] for r in records) == 20


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out == f"rnnlab {rnnlab.__version__}\n"


def test_a_task_written_after_set_is_still_the_task(capsys):
    assert main(["config", "--set", "lr=0.25", "hidden_size=8", "wordlm"]) == 0
    out = capsys.readouterr().out
    assert "lr = 0.25\n" in out and "hidden_size = 8\n" in out and "eval_batch_size = " in out  # wordlm's keys
