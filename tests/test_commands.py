"""The sub-commands end to end (``rnnlab/commands.py``): train -> sample -> evaluate -> plot on a tiny run, resume
and --force from the command line, ``presets`` and ``config``, the closing hint of a training, and the checks
each command makes before any work (one line, exit status 2, existing files untouched).

The task-specific paths are in tests/tasks/; damaged run folders in test_checkpoint.py; config values in
test_config.py; the loop's own refusals in test_loop.py.
"""

import json
import logging
import math
import os
import shlex

import pytest
from safetensors.torch import load_file
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.tasks import TASKS

from conftest import TINY, fails
from tiny_runs import snapshot, train_args, trained  # noqa: F401 -- trained is a fixture

RUN_FILES = [".lock", "config.json", "metrics.jsonl", "model.safetensors", "train_state.pt", "vocab.json"]


def test_smoke_train_sample_evaluate_plot(tmp_path, text_file, capsys, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="rnnlab")
    trained = str(tmp_path / "run")
    assert main(train_args(text_file, trained)) == 0
    assert f"next: rnnlab sample {trained}" in caplog.records[-1].getMessage()
    assert sorted(os.listdir(trained)) == RUN_FILES
    capsys.readouterr()
    assert main(["sample", trained, "--prime", "the ", "--length", "40", "--seed", "3"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("the ") and len(first) == len("the ") + 40 + 1
    assert main(["sample", trained, "--prime", "the ", "--length", "40", "--seed", "3"]) == 0
    assert capsys.readouterr().out == first
    assert first == rnnlab.load(trained).sample("the ", length=40, seed=3) + "\n"  # the command is the API
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
    assert result["bits_per_char"] == pytest.approx(result["loss"] / math.log(2))
    assert main(["evaluate", trained, "--data", text_file, "--json"]) == 0
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
    assert labels == ["loss (nats per character)"]  # the unit of a char LM's loss, from its task


def test_the_closing_hint_of_a_classifier_is_evaluate_with_the_path_quoted(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="rnnlab")
    out = str(tmp_path / "my run")
    assert main(["train", "classify", "--out", out, "--max-steps", "2", "--set", "train_size=16", "valid_size=8",
                 "hidden_size=4"]) == 0
    assert caplog.records[-1].getMessage().endswith(f"; next: rnnlab evaluate {shlex.quote(out)}")
    assert main(shlex.split(f"evaluate {shlex.quote(out)}")) == 0  # the hint runs as printed


def test_resume_continues_to_the_new_max_steps(trained, tmp_path, text_file):
    assert main(["train", "charlm", "--out", trained, "--resume", "--max-steps", "30"]) == 0
    steps = [json.loads(line)["step"] for line in open(os.path.join(trained, "metrics.jsonl"))]
    assert max(steps) == 30
    # Resumed, not restarted: the weights are those of one uninterrupted run of 30 steps (CPU, same seed).
    whole = str(tmp_path / "whole")
    assert main(["train", "charlm", "--data", text_file, "--out", whole, "--max-steps", "30", "--set", *TINY]) == 0
    resumed, straight = (load_file(os.path.join(run, "model.safetensors")) for run in (trained, whole))
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[name], straight[name]) for name in resumed)


def test_data_comes_from_set_data_unless_the_data_flag_names_it(tmp_path, text_file, monkeypatch):
    # Either way it is train's data= argument: a path is stored absolute, so evaluate finds it from anywhere.
    monkeypatch.chdir(os.path.dirname(text_file))
    by_set, both = str(tmp_path / "by-set"), str(tmp_path / "both")
    assert main(["train", "charlm", "--out", by_set, "--max-steps", "1", "--set", *TINY, "data=text.txt"]) == 0
    assert json.load(open(os.path.join(by_set, "config.json")))["config"]["data"] == text_file
    assert main(["train", "charlm", "--data", "text.txt", "--out", both, "--max-steps", "1", "--set", *TINY,
                 "data=missing.txt"]) == 0
    assert json.load(open(os.path.join(both, "config.json")))["config"]["data"] == text_file


def test_out_holding_a_run_is_refused_and_untouched(trained, capsys, text_file):
    before = snapshot(trained)
    fails(capsys, train_args(text_file, trained), "already holds a charlm run", "--resume", "--force")
    # --force with bad data must fail before it clears anything.
    fails(capsys, ["train", "charlm", "--data", text_file + ".missing", "--out", trained, "--force"], "does not exist")
    assert snapshot(trained) == before
    assert main(train_args(text_file, trained, "--force")) == 0


def test_force_replaces_a_run_whose_config_is_damaged(trained, capsys, text_file):
    with open(os.path.join(trained, "config.json"), "w") as f:
        f.write("{not json")
    fails(capsys, train_args(text_file, trained), "config.json is corrupted")
    assert main(train_args(text_file, trained, "--force")) == 0


def test_an_empty_out_is_refused_before_anything_is_touched(trained, capsys, text_file, monkeypatch):
    before = snapshot(trained)
    monkeypatch.chdir(trained)  # an unset --out "$OUT" inside a run folder must not clear it
    fails(capsys, ["train", "charlm", "--data", text_file, "--out", "", "--force", "--max-steps", "1"], "out (--out) is empty")
    assert snapshot(trained) == before


def test_resume_and_sample_options_that_cannot_hold(tmp_path, trained, capsys, text_file):
    before = snapshot(trained)
    fails(capsys, ["train", "charlm", "--out", trained, "--resume", "--force"], "pass one of them")
    fails(capsys, ["train", "charlm", "--out", str(tmp_path / "none"), "--resume"], "holds no run to resume")
    fails(capsys, ["train", "charlm", "--out", trained, "--resume", "--preset", "char-rnn"], "drop preset and config (--preset, --config)")
    fails(capsys, ["train", "wordlm", "--out", trained, "--resume"], "holds a charlm run, not a wordlm one")
    assert snapshot(trained) == before
    fails(capsys, ["sample", trained, "--length", "-1"], "length must be >= 0, got -1")
    fails(capsys, ["sample", trained, "--num-samples", "0"], "--num-samples must be >= 1, got 0")
    fails(capsys, ["sample", trained, "--prime", ""], "--prime is empty")
    seeded = str(tmp_path / "seeded")
    assert main(train_args(text_file, seeded, "--seed", "77")) == 0
    assert json.load(open(os.path.join(seeded, "config.json")))["config"]["seed"] == 77


def test_sample_options_that_do_not_fit_a_text_run(trained, capsys, tmp_path):
    fails(capsys, ["sample", trained, "--temperature", "-1"], "temperature must be >= 0 (0 = greedy), got -1.0")
    fails(capsys, ["sample", trained, "--top-p", "0"], "top_p must be in (0, 1]")
    fails(capsys, ["sample", trained, "--top-k", "-2"], "top_k must be >= 0 (0 = no limit), got -2")
    fails(capsys, ["sample", trained, "--temperature", "1e-40"], "temperature 1e-40", "use temperature 0")
    fails(capsys, ["sample", trained, "-o", str(tmp_path / "x.svg")], "-o is for handwriting runs")
    fails(capsys, ["sample", trained, "--bias", "1"], "--bias is for handwriting runs")
    assert not os.path.exists(tmp_path / "x.svg")


@pytest.mark.parametrize("argv, expected", [
    (["sample", "RUN", "--seed", str(2**64)], "seed must be in [0, 2**63)"),
    (["sample", "RUN", "--temperature", "nan"], "temperature must be >= 0"),
    (["gradients", "--seed", "-1", "--length", "3"], "--seed must be in [0, 2**63)"),
    (["write", "Hi", "-o", "x.svg", "--seed", str(2**63)], "seed must be in [0, 2**63)"),
    (["write", "Hi", "-o", "x.svg", "--style", "\u00b2"], "style file \u00b2 does not exist"),  # not a digit to int(): a file name
    (["write", "a" * 70, "-o", "x.svg", "--wrap", "40"], "one word of 70 characters"),
])
def test_bad_options_are_one_line(trained, capsys, argv, expected, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    err = fails(capsys, [trained if a == "RUN" else a for a in argv], expected)
    assert "usage:" not in err
    assert not os.path.exists(tmp_path / "x.svg")


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


# presets and config --------------------------------------------------------------------------------------


def test_presets_lists_every_tasks_presets_one_line_each_with_its_source_and_the_default_marked(capsys):
    capsys.readouterr()
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == sum(len(task.presets) for task in TASKS.values())
    for name, task in TASKS.items():
        for preset, spec in task.presets.items():
            (line,) = [line for line in lines if line.split()[:2] == [name, preset]]
            assert line.endswith(" " + spec.source)
            assert (line.split()[2] == "*") == (preset == task.default_preset), line
    assert main(["presets", "wordlm"]) == 0
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()] == list(TASKS["wordlm"].presets)


def test_config_prints_the_toml_that_train_reads_back_to_the_same_run(tmp_path, capsys, text_file):
    sets = ["hidden_size=16", "seq_len=8", "eval_interval=5", "preview_length=0", "lr=0.01"]
    capsys.readouterr()
    assert main(["config", "charlm", "--preset", "min-char-rnn", "--set", *sets]) == 0
    toml = capsys.readouterr().out
    assert toml == rnnlab.config_toml("charlm", "min-char-rnn", **dict(s.split("=") for s in sets))
    assert "hidden_size = 16\n" in toml and 'optimizer = "adagrad"\n' in toml  # the flag over the preset's own
    path = tmp_path / "run.toml"
    path.write_text(toml)
    by_file, by_flags = str(tmp_path / "by-file"), str(tmp_path / "by-flags")
    assert main(["train", "charlm", "--config", str(path), "--data", text_file, "--out", by_file,
                 "--max-steps", "5"]) == 0
    assert main(["train", "charlm", "--preset", "min-char-rnn", "--set", *sets, "--data", text_file, "--out", by_flags,
                 "--max-steps", "5"]) == 0
    same = [json.load(open(os.path.join(run, "config.json"))) for run in (by_file, by_flags)]
    assert same[0] == same[1] and same[0]["config"]["optimizer"] == "adagrad"
    weights = [load_file(os.path.join(run, "model.safetensors")) for run in (by_file, by_flags)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])  # same config, same seed


@pytest.mark.parametrize("argv, expected", [
    (["config", "charlm", "--preset", "zaremba-small"],
     "unknown preset 'zaremba-small' for charlm; its presets: char-rnn, min-char-rnn, shakespeare-gru, "
     "shakespeare-lstm; it is a preset of wordlm: rnnlab train wordlm --preset zaremba-small"),
    (["config", "handwriting", "--preset", "synthesis-cpu"],
     "it is a preset of synthesis: rnnlab train synthesis --preset synthesis-cpu"),
    (["train", "handwriting", "--preset", "synthesis-cpu", "--out", "OUT"],
     "it is a preset of synthesis: rnnlab train synthesis --preset synthesis-cpu"),
    (["config", "charlm", "--preset", "gpt-5"], "unknown preset 'gpt-5' for charlm; its presets: char-rnn"),
    (["config", "charlm", "--set", "hiden_size=3"], "unknown config key hiden_size"),
])
def test_an_unknown_preset_names_the_task_that_owns_it(tmp_path, capsys, argv, expected):
    out = str(tmp_path / "out")
    err = fails(capsys, [out if a == "OUT" else a for a in argv], expected)
    if "gpt-5" in argv:
        assert "it is a preset of" not in err
    assert not os.path.exists(out)


@pytest.mark.parametrize("task, hint", [("handwriting", "rnnlab sample {out} -o sample.svg"),
                                        ("synthesis", 'rnnlab write "Hello" --model {out} -o hello.png')])
def test_the_closing_hint_of_a_handwriting_run_draws_and_runs_as_printed(tmp_path, caplog, monkeypatch, task, hint):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="rnnlab")
    out = str(tmp_path / "hw")
    assert main(["train", task, "--out", out, "--max-steps", "2", "--set", "hidden_size=8", "num_layers=1",
                 "synthetic_lines=40", "batch_size=8", "eval_interval=2", "sample_points=0"]) == 0
    expected = hint.format(out=out)
    assert caplog.records[-1].getMessage().endswith(f"; next: {expected}")
    assert main(shlex.split(expected)[1:]) == 0
    assert os.path.getsize(tmp_path / expected.split()[-1]) > 0
