"""The command line: a train -> sample -> evaluate -> plot smoke run, and every bad input of the issue.

Bad input must give one line on stderr, exit status 2, no traceback, and leave existing files untouched.
"""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from rnnlab.cli import main

from conftest import TINY


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


def fails(capsys, argv, *expected):
    """Run the CLI, expect exit 2 and one error line containing each of ``expected``."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnlab: error: "), err
    for text in expected:
        assert text in err[0], err[0]
    return err[0]


def test_smoke_train_sample_evaluate_plot(tmp_path, trained, capsys):
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
    assert main(["sample", trained, "--length", "10", "--num-samples", "3", "--top-k", "3", "--top-p", "0.9"]) == 0
    assert capsys.readouterr().out.count("-" * 40) == 2

    assert main(["evaluate", trained, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # Evaluating the saved (best) weights on the run's own split reproduces the best validation of training.
    best = min(r["loss"] for r in map(json.loads, open(os.path.join(trained, "metrics.jsonl"))) if r["split"] == "valid")
    assert result["loss"] == pytest.approx(best, rel=1e-6) and result["tokens"] > 0
    assert result["bits_per_char"] == pytest.approx(result["loss"] / 0.6931471805599453)
    assert main(["evaluate", trained, "--data", os.path.join(os.path.dirname(trained), "text.txt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] > result["tokens"]

    png = str(tmp_path / "curves.png")
    assert main(["plot", trained, "-o", png]) == 0
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_to_the_new_max_steps(trained, capsys):
    assert main(["train", "charlm", "--out", trained, "--resume", "--max-steps", "30"]) == 0
    steps = [json.loads(line)["step"] for line in open(os.path.join(trained, "metrics.jsonl"))]
    assert max(steps) == 30


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
