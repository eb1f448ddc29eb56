"""The command line: a train -> sample -> evaluate -> plot smoke run, and every bad input of the issue.

Bad input must give one line on stderr, exit status 2, no traceback, and leave existing files untouched.
"""

import hashlib
import io
import json
import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file
import torch

import rnnlab.commands
from rnnlab.cli import main

from conftest import TINY, fails


def train_args(data, out, *extra):
    return ["train", "charlm", "--data", data, "--out", out, "--max-steps", "20", "--set", *TINY, *extra]


@pytest.fixture
def trained(tmp_path, text_file):
    out = str(tmp_path / "run")
    assert main(train_args(text_file, out)) == 0
    return out


def snapshot(folder):
    return {name: hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(folder))}


def test_smoke_train_sample_evaluate_plot(tmp_path, trained, capsys, monkeypatch):
    assert sorted(os.listdir(trained)) == ["config.json", "metrics.jsonl", "model.safetensors", "train_state.pt",
                                           "vocab.json"]
    capsys.readouterr()
    assert main(["sample", trained, "--prime", "the ", "--length", "40", "--seed", "3"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("the ") and len(first) == len("the ") + 40 + 1
    assert main(["sample", trained, "--prime", "the ", "--length", "40", "--seed", "3"]) == 0
    assert capsys.readouterr().out == first
    assert main(["sample", trained, "--length", "30", "--temperature", "0", "--seed", "1"]) == 0
    greedy = capsys.readouterr().out
    assert main(["sample", trained, "--length", "30", "--temperature", "0", "--seed", "2"]) == 0
    assert capsys.readouterr().out == greedy
    assert main(["sample", trained, "--length", "10", "--num-samples", "3", "--top-k", "3", "--top-p", "0.9",
                 "--seed", "4"]) == 0
    samples = capsys.readouterr().out.split("\n" + "-" * 40 + "\n")
    assert len(samples) == 3 and all(len(s) == 1 + 10 + 1 and s[0] == s[-1] == "\n" for s in samples)  # prime, 10, end
    assert len(set(samples)) > 1  # each sample draws afresh from the prime

    assert main(["evaluate", trained, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # Evaluating the saved (best) weights on the run's own split reproduces the best validation of training.
    best = min(r["loss"] for r in map(json.loads, open(os.path.join(trained, "metrics.jsonl"))) if r["split"] == "valid")
    assert result["loss"] == pytest.approx(best, rel=1e-6) and result["tokens"] > 0
    assert result["bits_per_char"] == pytest.approx(result["loss"] / 0.6931471805599453)
    assert main(["evaluate", trained, "--data", os.path.join(os.path.dirname(trained), "text.txt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] > result["tokens"]

    import matplotlib.axes

    labels = []
    set_ylabel = matplotlib.axes.Axes.set_ylabel
    monkeypatch.setattr(matplotlib.axes.Axes, "set_ylabel", lambda ax, text, **kw: labels.append(text) or
                        set_ylabel(ax, text, **kw))
    assert main(["evaluate", trained]) == 0
    assert f"{result['loss']:.4f} nats/char, {result['bits_per_char']:.4f} bits/char over {result['tokens']:,} " \
        "characters" in capsys.readouterr().out
    png = str(tmp_path / "curves.png")
    assert main(["plot", trained, "-o", png]) == 0
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert labels == ["loss (nats per character)"]  # the unit of a char LM's loss, told by its records


def test_resume_continues_to_the_new_max_steps(trained, capsys, tmp_path, text_file):
    assert main(["train", "charlm", "--out", trained, "--resume", "--max-steps", "30"]) == 0
    steps = [json.loads(line)["step"] for line in open(os.path.join(trained, "metrics.jsonl"))]
    assert max(steps) == 30
    # Resumed, not restarted: the weights are those of one uninterrupted run of 30 steps (CPU, same seed).
    whole = str(tmp_path / "whole")
    assert main(["train", "charlm", "--data", text_file, "--out", whole, "--max-steps", "30", "--set", *TINY]) == 0
    resumed, straight = (load_file(os.path.join(run, "model.safetensors")) for run in (trained, whole))
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[name], straight[name]) for name in resumed)


def test_python_dash_m_runs_without_traceback_on_bad_input(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rnnlab", "train", "charlm", "--data", str(tmp_path / "missing.txt"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"rnnlab: error: data file {tmp_path / 'missing.txt'} does not exist; " \
                                  "give the path of a UTF-8 text file"
    assert not os.path.exists(tmp_path / "out")


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


def test_unknown_preset_config_key_and_set_key(tmp_path, capsys, text_file):
    out = str(tmp_path / "out")
    fails(capsys, ["train", "charlm", "--out", out, "--preset", "gpt-5"], "unknown preset 'gpt-5'", "char-rnn",
          "min-char-rnn", "shakespeare-gru", "shakespeare-lstm")
    toml = tmp_path / "c.toml"
    toml.write_text("hiden_size = 64\n")
    fails(capsys, ["train", "charlm", "--out", out, "--config", str(toml)], "unknown config key hiden_size",
          "hidden_size")
    fails(capsys, ["train", "charlm", "--out", out, "--set", "learning_rate=0.1"], "learning_rate", "valid keys",
          "lr")
    fails(capsys, ["train", "charlm", "--out", out, "--set", "lr=fast"], "lr must be float")
    fails(capsys, ["train", "charlm", "--out", out, "--set", "optimizer=lion"], "adamw")
    assert not os.path.exists(out)


def test_out_holding_a_run_is_refused_and_untouched(trained, capsys, text_file):
    before = snapshot(trained)
    fails(capsys, train_args(text_file, trained), "already holds a charlm run", "--resume", "--force")
    # --force with bad data must fail before it clears anything.
    fails(capsys, ["train", "charlm", "--data", text_file + ".missing", "--out", trained, "--force"], "does not exist")
    assert snapshot(trained) == before
    assert main(train_args(text_file, trained, "--force")) == 0


def test_corrupted_truncated_and_foreign_checkpoints(tmp_path, trained, capsys):
    weights = os.path.join(trained, "model.safetensors")
    good = open(weights, "rb").read()
    with open(weights, "wb") as f:
        f.write(good[: len(good) // 2])
    fails(capsys, ["sample", trained], "truncated")
    fails(capsys, ["evaluate", trained], "truncated")
    with open(weights, "wb") as f:
        f.write(good)
    with open(os.path.join(trained, "train_state.pt"), "r+b") as f:
        f.truncate(100)
    before = snapshot(trained)
    fails(capsys, ["train", "charlm", "--out", trained, "--resume"], "train_state.pt is corrupted or truncated")
    assert snapshot(trained) == before

    header = json.load(open(os.path.join(trained, "config.json")))
    header["task"] = "wordlm"
    with open(os.path.join(trained, "config.json"), "w") as f:
        json.dump(header, f)
    fails(capsys, ["train", "charlm", "--out", trained, "--resume"], "holds a wordlm run, not a charlm one")
    fails(capsys, ["sample", str(tmp_path / "nowhere")], "does not exist")


def test_prime_with_unknown_characters_lists_them(trained, capsys):
    fails(capsys, ["sample", trained, "--prime", "the Zebra\u00e9"], "the prime", "'Z'", "'\u00e9'")
    fails(capsys, ["sample", trained, "--temperature", "-1"], "--temperature")
    fails(capsys, ["sample", trained, "--top-p", "0"], "--top-p")


def test_a_run_configured_for_cuda_samples_and_evaluates_on_cpu(trained, capsys):
    # A run trained on a GPU stores device "cuda" in its config; its weights are saved on the CPU, and
    # sampling and evaluation run wherever --device says (CPU by default).
    path = os.path.join(trained, "config.json")
    header = json.load(open(path))
    header["config"]["device"] = "cuda"
    with open(path, "w") as f:
        json.dump(header, f)
    assert main(["sample", trained, "--length", "5", "--seed", "0"]) == 0
    assert main(["evaluate", trained, "--json"]) == 0


# A failing command leaves every existing file as it was: the checks run before the first write.

@pytest.mark.parametrize("change, expected", [
    ("hidden_size=32", "size mismatch"),
    ("cell=gru", "size mismatch"),
    ("optimizer=sgd", "saved by another optimiser"),
    ("optimizer=adam", "saved by another optimiser"),
    ("lr=nan", "lr must be a finite number"),
    ("lr=inf", "lr must be a finite number"),
])
def test_resume_with_a_set_that_does_not_fit_leaves_the_run_untouched(trained, capsys, change, expected):
    before = snapshot(trained)
    fails(capsys, ["train", "charlm", "--out", trained, "--resume", "--max-steps", "25", "--set", change], expected)
    assert snapshot(trained) == before
    assert main(["train", "charlm", "--out", trained, "--resume", "--max-steps", "25"]) == 0  # still resumable


def test_resume_from_another_runs_or_an_incomplete_state_is_refused_untouched(tmp_path, trained, capsys, text_file):
    import torch

    other = str(tmp_path / "other")
    assert main(train_args(text_file, other, "hidden_size=24")) == 0
    state_path = os.path.join(trained, "train_state.pt")
    with open(os.path.join(other, "train_state.pt"), "rb") as src, open(state_path, "wb") as dst:
        dst.write(src.read())
    before = snapshot(trained)
    fails(capsys, ["train", "charlm", "--out", trained, "--resume"], "does not fit", "size mismatch")
    assert snapshot(trained) == before
    state = torch.load(state_path, weights_only=True)
    del state["optimizer"]
    torch.save(state, state_path)
    before = snapshot(trained)
    fails(capsys, ["train", "charlm", "--out", trained, "--resume"], "does not fit", "no entry 'optimizer'")
    assert snapshot(trained) == before


def test_device_cuda_without_a_gpu_fails_before_anything_is_written(tmp_path, trained, capsys, text_file, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without one
    before = snapshot(trained)
    fails(capsys, ["train", "charlm", "--out", trained, "--resume", "--device", "cuda"], "no CUDA GPU")
    fails(capsys, train_args(text_file, trained, "--force", "--device", "cuda"), "no CUDA GPU")
    assert snapshot(trained) == before
    fails(capsys, train_args(text_file, str(tmp_path / "new"), "--device", "cuda"), "no CUDA GPU")
    assert not os.path.exists(tmp_path / "new")


def test_a_run_that_never_reached_a_checkpoint_does_not_block_a_new_one(tmp_path, capsys, text_file, monkeypatch):
    from rnnlab.tasks.lm import LMTask

    loss = LMTask.loss

    def nan_loss(self, *args):
        value, state, tokens = loss(self, *args)
        return value * float("nan"), state, tokens

    out = str(tmp_path / "run")
    monkeypatch.setattr(LMTask, "loss", nan_loss)  # training stops before its first checkpoint, and says so
    err = fails(capsys, train_args(text_file, out, "max_skips=2"), "no checkpoint had been written yet")
    assert "is kept" not in err
    monkeypatch.undo()
    assert main(train_args(text_file, out)) == 0


def test_force_replaces_a_run_whose_config_is_damaged(trained, capsys, text_file):
    with open(os.path.join(trained, "config.json"), "w") as f:
        f.write("{not json")
    fails(capsys, train_args(text_file, trained), "config.json is corrupted")
    assert main(train_args(text_file, trained, "--force")) == 0


@pytest.mark.parametrize("setting, expected", [
    ("lr=nan", "lr must be a finite number"),
    ("lr=0", "lr must be positive"),
    ("clip=nan", "clip must be a finite number"),
    ("min_lr=nan", "min_lr must be a finite number"),
    ("forget_bias=inf", "forget_bias must be a finite number"),
    ("momentum=-1", "momentum must not be negative"),
    ("eps=-1", "eps must not be negative"),
    ("weight_decay=-1", "weight_decay must not be negative"),
    ("alpha=2", "alpha (RMSprop's smoothing constant) must be in [0, 1), got 2.0"),
    ("log_interval=0", "log_interval must be at least 1"),
    ("embedding_size=-1", "embedding_size must not be negative"),
    ("init_scale=-1", "init_scale must be positive"),
    ("seed=-1", "seed must be in [0, 2**63)"),
    (f"seed={2**63}", "seed must be in [0, 2**63)"),
])
def test_config_values_that_would_fail_later_are_refused_up_front(tmp_path, capsys, text_file, setting, expected):
    fails(capsys, train_args(text_file, str(tmp_path / "out"), setting), expected)
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("content, expected", [
    ("hidden_size = [1, 2]\n", "hidden_size must be int"),
    ("hidden_size = true\n", "hidden_size must be int"),
    ("[model]\nhidden_size = 3\n", "unknown config key model"),
    (b"lr = 0.1 # caf\xe9\n", "not valid TOML"),
    (b"\x89PNG\r\n\x1a\n\x00", "not valid TOML"),
])
def test_bad_config_files(tmp_path, capsys, content, expected):
    toml = tmp_path / "c.toml"
    toml.write_bytes(content if isinstance(content, bytes) else content.encode())
    fails(capsys, ["train", "charlm", "--out", str(tmp_path / "out"), "--config", str(toml)], expected)
    fails(capsys, ["train", "charlm", "--out", str(tmp_path / "out"), "--config", str(tmp_path)], "is a folder")


@pytest.mark.parametrize("damage", [
    lambda h: h.update(config=5),
    lambda h: h.update(task=["charlm"]),
    lambda h: h["config"].update(hidden_size=-1),
    lambda h: h["config"].update(hidden_size=None),
    lambda h: h["config"].update(hidden_size=[1]),
    lambda h: h["config"].update(cell="xyz"),
    lambda h: h["config"].update(dropout=5),
    lambda h: h["config"].update(init="uniform", init_scale=-1),
])
def test_a_damaged_config_json_is_one_line_for_every_reader(trained, capsys, damage):
    path = os.path.join(trained, "config.json")
    header = json.load(open(path))
    damage(header)
    with open(path, "w") as f:
        json.dump(header, f)
    fails(capsys, ["sample", trained, "--length", "5"], "config.json is corrupted")
    fails(capsys, ["evaluate", trained], "config.json is corrupted")


@pytest.mark.parametrize("vocab", ['{"kind": "char", "tokens": []}', '{"kind": "char", "tokens": ["a"], "features": "x"}',
                                   '{"kind": "char", "tokens": [1, 2]}', '{"kind": "char", "tokens": ["a", "a"]}', '[]'])
def test_a_damaged_vocab_json_is_one_line(trained, capsys, vocab):
    with open(os.path.join(trained, "vocab.json"), "w") as f:
        f.write(vocab)
    fails(capsys, ["sample", trained, "--length", "5"], "vocab.json is corrupted")


def test_a_vocabulary_that_lost_a_token_names_both_files(trained, capsys):
    path = os.path.join(trained, "vocab.json")
    vocab = json.load(open(path))
    vocab["tokens"] = vocab["tokens"][:-1]
    with open(path, "w") as f:
        json.dump(vocab, f)
    fails(capsys, ["sample", trained], "does not match config.json and vocab.json")


def test_nan_weights_are_reported_as_damage(trained, capsys):
    from safetensors.torch import load_file, save_file

    path = os.path.join(trained, "model.safetensors")
    tensors = load_file(path)
    next(iter(tensors.values()))[0] = float("nan")
    save_file(tensors, path)
    fails(capsys, ["sample", trained, "--length", "5"], "NaN or infinite weights")


def test_plot_survives_a_damaged_metrics_file(trained, capsys, tmp_path):
    path = os.path.join(trained, "metrics.jsonl")
    with open(path, "ab") as f:
        f.write(b'5\n{"split": "valid", "step": 1}\n\xff\xfe bytes\n{"split": "valid", "step": 20, "loss": 1.0, '
                b'"confusion": [[1, 2], [3]]}\n{"split": "train", "st')
    assert main(["plot", trained, "-o", str(tmp_path / "curves.png")]) == 0
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_unusable_output_paths_fail_before_any_work(tmp_path, trained, capsys):
    (tmp_path / "afile").write_text("x")
    fails(capsys, ["plot", trained, "-o", str(tmp_path / "nodir" / "p.png")], "does not exist")
    fails(capsys, ["plot", trained, "-o", str(tmp_path)], "is a folder")
    fails(capsys, ["gradients", "--length", "3", "-o", str(tmp_path / "nodir" / "g.png")], "does not exist")
    fails(capsys, ["train", "charlm", "--out", str(tmp_path / "afile" / "run")], "is a file")
    fails(capsys, ["write", "Hi", "-o", str(tmp_path)], "is a folder")
    existing = tmp_path / "exist.svg"
    existing.write_text("<svg/>")
    fails(capsys, ["write", "Hi", "-o", str(existing), "--seed", "1", "--show-attention",
                   str(tmp_path / "nodir" / "a.png")], "--show-attention", "does not exist")
    fails(capsys, ["write", "Hi", "-o", str(existing), "--show-attention", str(tmp_path / "a.gif")],
          "--show-attention", ".pdf")
    assert existing.read_text() == "<svg/>"


def test_an_os_error_while_writing_is_one_line(trained, capsys, tmp_path, monkeypatch):
    import rnnlab.draw

    def refuse(path, write):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(rnnlab.draw, "atomic_write", refuse)
    fails(capsys, ["plot", trained, "-o", str(tmp_path / "p.png")], "Permission denied", "p.png")


@pytest.mark.parametrize("argv, expected", [
    (["sample", "RUN", "--seed", str(2**64)], "--seed must be in [0, 2**63)"),
    (["sample", "RUN", "--temperature", "nan"], "--temperature"),
    (["gradients", "--seed", "-1", "--length", "3"], "--seed must be in [0, 2**63)"),
    (["write", "Hi", "-o", "x.svg", "--seed", str(2**63)], "--seed must be in [0, 2**63)"),
    (["write", "Hi", "-o", "x.svg", "--style", "\u00b2"], "--style \u00b2"),
    (["write", "a" * 70, "-o", "x.svg", "--wrap", "40"], "one word of 70 characters"),
])
def test_bad_options_are_one_line(trained, capsys, argv, expected, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    err = fails(capsys, [trained if a == "RUN" else a for a in argv], expected)
    assert "usage:" not in err
    assert not os.path.exists(tmp_path / "x.svg")


@pytest.mark.parametrize("argv, expected", [
    (["sample", "RUN", "--length", "x"], "argument --length: invalid int value: 'x' (see rnnlab sample --help)"),
    (["train", "charlm", "--out"], "argument --out: expected one argument (see rnnlab train --help)"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["plot", "RUN", "--foo"], "unrecognized arguments: --foo (see rnnlab plot --help)"),
    (["gradients", "--cell", "gru", "extra", "-x"], "unrecognized arguments: extra -x (see rnnlab gradients --help)"),
])
def test_usage_errors_are_one_line_too(argv, expected, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnlab: error: ") and expected in err[0], err


def test_an_empty_out_is_refused_before_anything_is_touched(trained, capsys, text_file, monkeypatch):
    before = snapshot(trained)
    monkeypatch.chdir(trained)  # an unset --out "$OUT" inside a run folder must not clear it
    fails(capsys, ["train", "charlm", "--data", text_file, "--out", "", "--force", "--max-steps", "1"], "--out is empty")
    assert snapshot(trained) == before


def test_repeated_set_flags_all_apply(tmp_path, capsys, text_file):
    fails(capsys, ["train", "charlm", "--data", text_file, "--out", str(tmp_path / "out"), "--set", "hidden_size=0",
                   "--set", "lr=0.1"], "hidden_size must be at least 1")


def test_resume_options_that_cannot_hold(trained, capsys, text_file):
    before = snapshot(trained)
    fails(capsys, ["train", "charlm", "--out", trained, "--resume", "--force"], "pass one of them")
    fails(capsys, ["train", "charlm", "--out", trained, "--resume", "--max-steps", "10"], "already at step 20")
    assert snapshot(trained) == before


def test_resume_skips_damaged_metrics_lines(trained, capsys, caplog):
    with open(os.path.join(trained, "metrics.jsonl"), "ab") as f:
        f.write(b'5\n[1, 2]\n{"step": "x"}\n\xff\n')
    assert main(["train", "charlm", "--out", trained, "--resume", "--max-steps", "25"]) == 0
    assert "metrics.jsonl: 4 damaged line(s) dropped on resume" in caplog.text
    steps = [json.loads(line)["step"] for line in open(os.path.join(trained, "metrics.jsonl"))]
    assert steps == sorted(steps) and max(steps) == 25


def test_more_bad_input_is_one_line(trained, capsys, tmp_path):
    fails(capsys, ["sample", trained, "--temperature", "1e-40"], "--temperature 1e-40", "use --temperature 0")
    fails(capsys, ["sample", trained, "-o", str(tmp_path / "x.svg")], "-o is for handwriting runs")
    fails(capsys, ["sample", trained, "--bias", "1"], "--bias is for handwriting runs")
    toml = tmp_path / "c.toml"
    toml.write_text("hidden_size = 1979-05-27\n")
    fails(capsys, ["train", "charlm", "--out", str(tmp_path / "out"), "--config", str(toml)], "hidden_size must be int")
    with open(os.path.join(trained, "train_state.pt"), "w") as f:
        f.write("hello world")
    fails(capsys, ["train", "charlm", "--out", trained, "--resume"], "train_state.pt is corrupted or truncated")


def test_an_allocation_the_machine_cannot_make_is_one_line_and_writes_nothing(tmp_path, capsys, text_file):
    out = tmp_path / "out"  # 4 x 10^7 x 10^7 float32 LSTM weights: 1.6 PB, refused by any allocator
    fails(capsys, ["train", "charlm", "--data", text_file, "--out", str(out), "--set", "hidden_size=10000000"],
          "out of memory (asked for 1,490,116.1 GiB); lower batch_size, hidden_size or seq_len")
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


def test_interrupts_and_closed_pipes_end_quietly(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    def closed_pipe(args):
        raise BrokenPipeError

    monkeypatch.setattr(rnnlab.commands, "plot", interrupted)
    assert main(["plot", "RUN"]) == 130
    assert capsys.readouterr().err == "rnnlab: interrupted; a training run continues from its last checkpoint with " \
                                      "--resume\n"
    monkeypatch.setattr(rnnlab.commands, "plot", closed_pipe)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)  # main closes it: nothing more to say down a closed pipe
    assert main(["plot", "RUN"]) == 0  # rnnlab sample ... | head
    assert stderr.closed


def test_resume_and_sample_options_that_cannot_hold(tmp_path, trained, capsys, text_file):
    fails(capsys, ["train", "charlm", "--out", str(tmp_path / "none"), "--resume"], "holds no run to resume")
    fails(capsys, ["train", "charlm", "--out", trained, "--resume", "--preset", "char-rnn"], "drop --preset/--config")
    fails(capsys, ["train", "wordlm", "--out", trained, "--resume"], "holds a charlm run, not a wordlm one")
    fails(capsys, ["sample", trained, "--length", "-1"], "--length must be >= 0 and --num-samples >= 1")
    fails(capsys, ["sample", trained, "--num-samples", "0"], "--length must be >= 0 and --num-samples >= 1")
    seeded = str(tmp_path / "seeded")
    assert main(train_args(text_file, seeded, "--seed", "77")) == 0
    assert json.load(open(os.path.join(seeded, "config.json")))["config"]["seed"] == 77


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out == f"rnnlab {rnnlab.__version__}\n"
