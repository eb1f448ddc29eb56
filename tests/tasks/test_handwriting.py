"""rnnlab.tasks.handwriting, the prediction network's task (with what it shares with synthesis in tasks/pen.py):
it learns synthetic lines, the CLI trains, samples and evaluates, an 0.1 run folder still loads, and bad data
or keys are refused with one line before anything is written."""

import json
import os
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.config import override
from rnnlab.data import iamondb
from rnnlab.errors import UserError
from rnnlab.folder import RunFolder
from rnnlab.tasks import handwriting
from rnnlab.tasks.handwriting import Prediction
from rnnlab.tasks.pen import evaluate_lines
from rnnlab.loop import train
from rnnlab.writing import Handwriting

from conftest import fails, shared_data

TINY = {"hidden_size": 32, "num_layers": 2, "mixtures": 5, "synthetic_lines": 12, "valid_fraction": 0.25,
        "batch_size": 9, "optimizer": "adam", "lr": 1e-2, "clip": 10.0, "sample_points": 30, "device": "cpu"}


def test_a_tiny_prediction_model_overfits_a_few_synthetic_lines(tmp_path):
    config = override(handwriting.Config(), {**TINY, "max_steps": 150, "eval_interval": 150}, "test")
    torch.manual_seed(0)
    task = Prediction(config)
    model = Prediction.build_model(task.config, task.vocab)
    train_set = evaluate_lines(model, task.train, 9, task.vocab, task.forward)
    folder = RunFolder(str(tmp_path))
    with folder.training():
        train(model, task, task.config, folder)
    after = evaluate_lines(model, task.train, 9, task.vocab, task.forward)
    # Normalised offsets: a unit Gaussian scores about 2.8 nats per point and the pen about 0.2; learning the
    # glyph shapes of 9 lines takes it far below that.
    assert train_set["nats_per_point"] > 2.0 and after["nats_per_point"] < 0.0, (train_set, after)
    assert after["nats_per_line"] == pytest.approx(after["nats_per_point"] * after["points"] / after["lines"])
    assert os.path.exists(tmp_path / "samples" / "step-0000150.svg")


def test_cli_train_sample_evaluate(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "run")
    sets = [f"{k}={v}" for k, v in TINY.items() if k != "device"] + ["eval_interval=10"]
    assert main(["train", "handwriting", "--out", out, "--max-steps", "10", "--set", *sets]) == 0
    header = json.load(open(os.path.join(out, "config.json")))
    assert header["task"] == "handwriting" and "window_gaussians" not in header["config"]  # synthesis is its own task
    assert header["config"]["std_dx"] != 1.0 and header["config"]["std_dy"] > 0  # the training split's statistics

    biases = []  # every point is drawn by the one mixture sampler, with the bias asked for
    sample = handwriting.sample_mixture
    monkeypatch.setattr(handwriting, "sample_mixture", lambda y, bias, generator: biases.append(bias) or
                        sample(y, bias=bias, generator=generator))
    svg = str(tmp_path / "hand.svg")
    assert main(["sample", out, "-o", svg, "--length", "40", "--seed", "3", "--bias", "1.5"]) == 0
    assert biases == [1.5] * 40
    paths = [e for e in ET.parse(svg).iter() if e.tag.endswith("path")]
    assert len(paths) >= 1
    run = rnnlab.load(out)
    drawn = [Prediction.sample_strokes(run.model, run.config, 40, 1.5, torch.Generator().manual_seed(3))
             for _ in range(2)]
    assert isinstance(drawn[0], Handwriting) and drawn[0].texts == [""] and drawn[0].attention is None
    assert drawn[0].lines[0].shape == (40, 3)
    assert np.array_equal(drawn[0].lines[0], drawn[1].lines[0])  # the seed fixes the strokes
    api = run.sample(length=40, seed=3, bias=1.5)  # the public call draws what the command drew
    assert np.array_equal(api.lines[0], drawn[0].lines[0]) and api.to_svg() == open(svg).read()
    capsys.readouterr()
    assert main(["evaluate", out, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["lines"] == 3 and np.isfinite(result["nats_per_line"])
    assert result["nats_per_point"] == pytest.approx(result["nats_per_line"] * result["lines"] / result["points"])
    assert result == run.evaluate()
    assert main(["evaluate", out]) == 0
    assert f"{result['nats_per_line']:.1f} nats per line" in capsys.readouterr().out
    fails(capsys, ["sample", out, "-o", str(tmp_path / "hand.gif")], "strokes are written as .svg or .png")
    fails(capsys, ["sample", out, "-o", svg, "--bias", "-1"], "--bias must be between")
    fails(capsys, ["sample", out, "-o", svg, "--prime", "hello"], "prime is for text runs")
    fails(capsys, ["sample", out, "-o", svg, "--temperature", "0.5", "--top-k", "3"], "temperature, top_k are for "
                                                                                     "text runs", "shaped by bias")
    fails(capsys, ["sample", out, "-o", svg, "--length", "0"], "length 0: a drawing needs at least 1 point")
    fails(capsys, ["write", "hello", "--model", out, "-o", svg], "cannot write a given text", "rnnlab train synthesis")
    assert biases == [1.5] * 40 * 4  # the refusals drew nothing


def test_evaluate_all_lines_of_the_iamondb_sample(tmp_path, capsys, monkeypatch):
    sample = shared_data("handwriting", "iamondb-sample")
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "cache"))
    out = str(tmp_path / "run")
    sets = [f"{k}={v}" for k, v in TINY.items() if k not in ("device", "synthetic_lines", "valid_fraction")]
    assert main(["train", "handwriting", "--data", sample, "--out", out, "--max-steps", "3", "--set", *sets,
                 "eval_interval=3", "valid_fraction=0.3"]) == 0
    capsys.readouterr()
    assert main(["evaluate", out, "--data", sample, "--split", "all", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["lines"] == 32 and np.isfinite(result["nats_per_line"])


# ------------------------------------------------------------------------------------------ bad input


SMALL = ["hidden_size=8", "num_layers=1", "mixtures=2", "batch_size=4", "sample_points=0"]


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """A one-step run on synthetic lines with valid_fraction 0.2: no form of the IAM-OnDB sample falls below it."""
    out = str(tmp_path_factory.mktemp("hw") / "run")
    assert main(["train", "handwriting", "--out", out, "--max-steps", "1", "--set", *SMALL, "synthetic_lines=12",
                 "valid_fraction=0.2", "device=cpu"]) == 0
    return out


def test_a_run_folder_of_rnnlab_0_1_still_loads_and_draws_the_same(synthetic_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(synthetic_run, old)
    header = json.load(open(old / "config.json"))
    # 0.1 had one task "handwriting" for both networks: every key of both, window_gaussians 0 for this one
    header["config"].update({"window_gaussians": 0, "alphabet": "abc", "chars_per_step": 0.0, "max_text_length": 0})
    header["rnnlab_version"] = "0.1.0"
    (old / "config.json").write_text(json.dumps(header))
    new_run, old_run = rnnlab.load(synthetic_run), rnnlab.load(str(old))
    assert old_run.task is Prediction and old_run.config == new_run.config
    new, again = new_run.sample(length=25, seed=4), old_run.sample(length=25, seed=4)
    assert np.array_equal(new.lines[0], again.lines[0])


def test_a_split_without_validation_or_training_lines_is_refused_before_training(tmp_path, capsys, monkeypatch):
    sample = shared_data("handwriting", "iamondb-sample")
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "cache"))
    out = str(tmp_path / "run")
    train_args = ["train", "handwriting", "--data", sample, "--out", out, "--max-steps", "2", "--set", *SMALL]
    # The default valid_fraction (0.1) holds out none of the sample's 4 forms: refused, not a crash at evaluation.
    fails(capsys, train_args, "no validation lines", "valid_fraction=0.1", "4 forms", "raise valid_fraction")
    fails(capsys, train_args + ["valid_fraction=0.95"], "no training lines", "lower valid_fraction")
    assert not os.path.exists(out)  # the synthesis network's forms of these: tests/tasks/test_synthesis.py


def test_evaluating_an_empty_validation_split_suggests_split_all(synthetic_run, tmp_path, capsys, monkeypatch):
    sample = shared_data("handwriting", "iamondb-sample")
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "cache"))
    fails(capsys, ["evaluate", synthetic_run, "--data", sample], "valid_fraction=0.2", "none of the 4 forms",
          "--split all")
    capsys.readouterr()
    assert main(["evaluate", synthetic_run, "--data", sample, "--split", "all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lines"] == 32
    fails(capsys, ["evaluate", synthetic_run, "--split", "test"], "--split must be valid or all")


@pytest.mark.parametrize("name, content, expected", [
    ("lines.txt", b"not handwriting\n" * 100, "not a tar archive"),
    ("fake.tar.xz", bytes(range(256)) * 4, "not a tar archive"),
    ("empty.tar.xz", b"", "an empty file"),
], ids=["text", "junk", "empty"])
def test_data_that_is_no_archive_is_one_line(synthetic_run, tmp_path, capsys, monkeypatch, name, content, expected):
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "cache"))
    data = tmp_path / name
    data.write_bytes(content)
    out = str(tmp_path / "run")
    fails(capsys, ["train", "handwriting", "--data", str(data), "--out", out, "--max-steps", "2", "--set", *SMALL],
          str(data), expected, "IAM-OnDB folder")
    assert not os.path.exists(out)
    fails(capsys, ["evaluate", synthetic_run, "--data", str(data), "--split", "all"], expected)


@pytest.mark.parametrize("key, value, expected", [
    ("sample_points", "-5", "got -5"), ("std_dx", "0", "got 0.0"), ("std_dy", "-2", "got -2.0"),
    ("std_dx", "inf", "got inf"), ("mean_dx", "nan", "got nan"), ("valid_fraction", "nan", "got nan"),
    ("point_stride", "0", "got 0"), ("mixtures", "0", "got 0"),
])
def test_handwriting_keys_that_would_fail_later_are_refused(key, value, expected):
    config = override(handwriting.Config(), {key: value}, "test")
    with pytest.raises(UserError, match=f"^{key} .*{expected}"):
        config.validate()
    override(handwriting.Config(), {"sample_points": 0}, "test").validate()  # 0 draws no sample


def test_the_synthesis_keys_are_not_the_prediction_networks(tmp_path, capsys):
    out = str(tmp_path / "run")
    fails(capsys, ["train", "handwriting", "--out", out, "--set", *SMALL, "window_gaussians=2"],
          "unknown config key window_gaussians", "valid keys:", "peepholes")
    assert not os.path.exists(out)


def test_a_negative_sample_points_is_refused_before_anything_is_written(tmp_path, capsys):
    out = str(tmp_path / "run")
    fails(capsys, ["train", "handwriting", "--out", out, "--max-steps", "2", "--set", *SMALL[:-1], "sample_points=-5"],
          "sample_points must not be negative", "got -5")
    assert not os.path.exists(out)


def test_evaluate_without_data_needs_it_where_the_run_data_is_gone(synthetic_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(iamondb, "load_iamondb", lambda *a, **k: pytest.fail("no data may be read"))
    # builtin:handwriting ships without its data: without --data it is refused, never unpacked.
    fails(capsys, ["evaluate", "builtin:handwriting"], "builtin:handwriting", "--data PATH")
    fails(capsys, ["evaluate", "builtin:handwriting", "--split", "all"], "--data PATH")
    moved = tmp_path / "moved"
    shutil.copytree(synthetic_run, moved)
    header = json.load(open(moved / "config.json"))
    header["config"]["data"] = str(tmp_path / "gone" / "iamondb")
    (moved / "config.json").write_text(json.dumps(header))
    fails(capsys, ["evaluate", str(moved)], str(tmp_path / "gone" / "iamondb"), "does not exist", "--data PATH")
    assert not os.path.exists(tmp_path / "cache")
