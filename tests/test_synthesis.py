"""The synthesis network end to end: it learns to align on synthetic handwriting, sampling stops by Graves'
rule or the cap, ``rnnlab write`` and its bad inputs, and the bundled model."""

import json
import math
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from rnnlab import checkpoint, writing
from rnnlab.cli import main
from rnnlab.config import override
from rnnlab.data import hershey
from rnnlab.data.text import Vocab
from rnnlab.mixture import sequence_nll, split_params
from rnnlab.models import HandwritingSynthesizer
from rnnlab.tasks import handwriting
from rnnlab.writing import CAP_FACTOR, Style, layout_page, split_lines, write_lines

from conftest import shared_data

ALPHABET = "acemnorsuvwxz"  # Hershey script letters without ascenders: every glyph a few pen points wide


def synthetic_batch(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    texts = ["".join(rng.choice(list(ALPHABET), rng.integers(3, 6))) for _ in range(count)]
    lines = [hershey.render_text(text, rng) for text in texts]
    xy = np.concatenate([line.offsets for line in lines])[:, :2]
    mean, std = xy.mean(0), xy.std(0)

    def normalise(offsets):
        out = offsets.copy()
        out[:, :2] = (out[:, :2] - mean) / std
        return out

    data = [(line.text, normalise(line.offsets)) for line in lines]
    chars_per_step = sum(len(t) for t, _ in data) / sum(len(o) for _, o in data)
    return lines, handwriting.pad_lines(data, Vocab(list(ALPHABET), "char")), chars_per_step


def alignment(model, lines, batch) -> tuple[float, float]:
    """Share of the points of each character whose window peaks on that character, and share of steps where
    the peak moves back."""
    with torch.no_grad():
        _, state = model(batch["inputs"], batch["text"], batch["lengths"])
    hits = total = backwards = steps = 0
    for i, line in enumerate(lines):
        peak = state.phi[i, : len(line.offsets), : len(line.text)].argmax(-1)
        for c, (start, stop) in enumerate(line.bounds):
            hits += int((peak[start:stop] == c).sum())
            total += int(stop - start)
        backwards += int((peak.diff() < 0).sum())
        steps += len(peak) - 1
    return hits / total, backwards / steps


def test_a_tiny_synthesis_model_learns_a_monotone_alignment_on_synthetic_lines():
    lines, batch, chars_per_step = synthetic_batch(32)
    torch.manual_seed(0)
    # The window starts at half the data's writing speed, so an untrained model is far behind the pen.
    model = HandwritingSynthesizer(len(ALPHABET), hidden_size=32, num_layers=1, mixtures=3, gaussians=1,
                                   chars_per_step=chars_per_step / 2)
    before, _ = alignment(model, lines, batch)
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):
        y, _ = model(batch["inputs"], batch["text"], batch["lengths"])
        loss = sequence_nll(split_params(y)[1], batch["targets"], batch["mask"]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after, backwards = alignment(model, lines, batch)
    # measured: 0.23 before, 0.84 after (chance with 3-5 characters is about 0.25)
    assert before < 0.4 and after > 0.75, (before, after)
    assert backwards < 0.02, backwards  # the peak walks forward across the text


WRITING = Vocab(list(ALPHABET + " "), "char")


def forced_speed_model(chars_per_point: float):
    """A model whose window moves at a fixed speed whatever it reads: zero weights, a set kappa bias."""
    torch.manual_seed(0)
    model = HandwritingSynthesizer(len(WRITING), hidden_size=8, num_layers=2, mixtures=2, gaussians=1)
    with torch.no_grad():
        model.window.linear.weight.zero_()
        model.window.linear.bias.copy_(torch.tensor([0.0, 0.0, math.log(chars_per_point)]))
    return model


def writing_config(**keys):
    return override(handwriting.Config(), {"window_gaussians": 1, "chars_per_step": 0.1, **keys}, "test")


def test_lines_stop_when_the_window_passes_their_last_character():
    model = forced_speed_model(0.25)  # 4 points per character
    texts = ["ace", "nosvwxz"]
    written = write_lines(model, writing_config(), WRITING, texts, 0.0,
                          torch.Generator().manual_seed(0))
    assert written.stopped == [True, True]
    # phi(U + 1) overtakes phi(U) once kappa > U + 1/2 (at U + 1/2 they tie). Before point t (from 0) is drawn
    # kappa = 0.25 (t + 1), so the check before point 4U + 2 stops the line: 4U + 2 points.
    assert [len(line) for line in written.lines] == [4 * len(t) + 2 for t in texts]
    for line, phi, text in zip(written.lines, written.phi, texts):
        assert phi.shape == (len(line), len(text) + 1)
        assert line[-1, 2] == 1.0  # the pen lifts at the end of the line


def test_a_window_that_never_moves_is_cut_at_the_cap():
    model = forced_speed_model(1e-6)
    config = writing_config(chars_per_step=0.5)
    written = write_lines(model, config, WRITING, ["ac", "nosw"], 0.0,
                          torch.Generator().manual_seed(0))
    assert written.stopped == [False, False]
    assert [len(line) for line in written.lines] == [math.ceil(CAP_FACTOR * n / 0.5) for n in (2, 4)]


def test_priming_reads_the_style_and_the_window_covers_only_the_new_text():
    model = forced_speed_model(0.25)
    style = Style("zz", np.tile(np.array([[1.0, 0.0, 0.0]], np.float32), (8, 1)))
    written = write_lines(model, writing_config(), WRITING, ["ace"], 0.0,
                          torch.Generator().manual_seed(0), style)
    # 9 steps (the zero row and the 8 primer points) moved the window to 2.25; the text is "zz ace" (U = 6), so
    # before point t kappa = 2.25 + 0.25 t, past 6.5 first at t = 18: 18 points
    assert written.stopped == [True] and len(written.lines[0]) == 18
    assert written.phi[0].shape == (18, 4)


def test_layout_page_stacks_lines_under_each_other():
    line = np.array([[0, 0, 0], [10, 10, 0], [10, -10, 1]], np.float32)
    page, height = layout_page([line, line])
    points = np.cumsum(page[:, :2], axis=0)
    assert height == 10 and len(page) == 6
    assert points[3:, 1].max() < points[:3, 1].min()  # the second line lies below the first
    assert page[2, 2] == 1.0  # pen up between the lines


TINY = ["window_gaussians=2", "hidden_size=16", "num_layers=2", "mixtures=3", "synthetic_lines=12",
        "valid_fraction=0.25", "batch_size=9", "optimizer=adam", "lr=1e-2", "eval_interval=3", "log_interval=3"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synthesis") / "run")
    assert main(["train", "handwriting", "--preset", "graves-synthesis", "--set", *TINY, "--max-steps", "3",
                 "--out", out, "--device", "cpu"]) == 0
    return out


def test_cli_trains_writes_and_plots_attention(tiny_run, tmp_path, capsys, monkeypatch):
    header = checkpoint.read_header(tiny_run)
    assert header["config"]["window_gaussians"] == 2 and header["config"]["max_text_length"] > 0
    assert os.path.exists(os.path.join(tiny_run, "samples", "step-0000003.svg"))
    svg, png, attention = tmp_path / "a.svg", tmp_path / "a.png", tmp_path / "att.png"
    assert main(["write", "the cow\nsaw me", "--model", tiny_run, "-o", str(svg), "--seed", "3",
                 "--show-attention", str(attention)]) == 0
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and len(root.findall(".//{http://www.w3.org/2000/svg}path")) >= 2
    assert attention.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first = svg.read_text()
    assert main(["write", "the cow\nsaw me", "--model", tiny_run, "-o", str(svg), "--seed", "3"]) == 0
    assert svg.read_text() == first  # same seed, same writing
    biases = []  # every point is drawn by the one mixture sampler, with the bias asked for
    sample = writing.sample_mixture
    monkeypatch.setattr(writing, "sample_mixture", lambda y, bias, generator: biases.append(bias) or
                        sample(y, bias=bias, generator=generator))
    assert main(["write", "the cow", "--model", tiny_run, "-o", str(png), "--bias", "2", "--seed", "0"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(biases) > 7 and set(biases) == {2.0}
    assert main(["evaluate", tiny_run, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["lines"] == 3


@pytest.mark.parametrize("args, message", [
    (["", "-o", "{out}"], "empty"),
    (["h\u00e9llo @", "-o", "{out}"], "lacks: '\u00e9', '@'"),
    (["the cow " * 20, "-o", "{out}"], "break it into shorter lines"),
    (["the cow", "-o", "{out}", "--wrap", "-1"], "--wrap must be"),
    (["the cow", "-o", "{out}", "--bias", "-1"], "--bias must be between"),
    (["the cow", "-o", "{out}", "--bias", "11"], "--bias must be between"),
    (["the cow", "-o", "{out}", "--style", "7"], "built-in styles"),
    (["the cow", "-o", "{out}", "--style", "{bad_style}"], "must hold"),
    (["the cow", "-o", "{out}", "--style", "{missing}"], "no such file"),
    (["the cow", "-o", "{dir}/out.txt"], ".svg or .png"),
    (["the cow", "-o", "{out}", "--show-attention", "{dir}/att.gif"], "att.gif: the plot is written as .png, .svg or .pdf"),
])
def test_write_refuses_bad_input_with_one_line_and_keeps_the_old_output(tiny_run, tmp_path, capsys, args, message):
    out = tmp_path / "old.svg"
    out.write_text("keep me")
    bad_style = tmp_path / "style.json"
    bad_style.write_text(json.dumps({"text": "ab", "offsets": [[1, 2]]}))
    values = {"out": str(out), "dir": str(tmp_path), "bad_style": str(bad_style), "missing": str(tmp_path / "no.json")}
    code = main(["write", *[a.format(**values) for a in args], "--model", tiny_run])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert out.read_text() == "keep me"


def test_split_lines_at_newlines_and_optionally_at_spaces():
    assert split_lines("  the cow\\n\n saw me \n") == ["the cow", "saw me"]
    text = "the quick brown fox jumps over the lazy dog"
    wrapped = split_lines(text, wrap=12)
    assert wrapped == ["the quick", "brown fox", "jumps over", "the lazy dog"]
    assert " ".join(wrapped) == text and all(len(line) <= 12 for line in wrapped)
    assert split_lines("a extraordinarily b", wrap=5) == ["a", "extraordinarily", "b"]  # a word is never cut


def test_write_wraps_a_long_line_into_a_page(tiny_run, tmp_path, monkeypatch):
    out, text = tmp_path / "page.svg", "the cow " * 20
    lines = split_lines(text, wrap=30)
    assert len(lines) == 6 and [len(line) for line in lines] == [27] * 5 + [19]  # 159 characters
    asked = []
    write = writing.write_lines
    monkeypatch.setattr(writing, "write_lines", lambda model, config, vocab, texts, *rest: asked.append(texts) or
                        write(model, config, vocab, texts, *rest))
    assert main(["write", text, "--wrap", "30", "--model", tiny_run, "-o", str(out), "--seed", "1"]) == 0
    assert asked == [lines]  # the wrapped lines, in one batch
    assert len(ET.parse(out).getroot().findall(".//{http://www.w3.org/2000/svg}path")) >= 6  # a pen lift per line


def test_write_with_a_style_file_and_a_prediction_run_refused(tiny_run, tmp_path, capsys):
    style = tmp_path / "style.json"
    rng = np.random.default_rng(0)
    line = hershey.render_text("was", rng)
    style.write_text(json.dumps({"text": "was", "offsets": line.offsets.tolist()}))
    assert main(["write", "a cow", "--model", tiny_run, "--style", str(style), "-o", str(tmp_path / "s.svg"),
                 "--seed", "0"]) == 0
    assert main(["sample", tiny_run, "-o", str(tmp_path / "u.svg")]) == 2
    assert "rnnlab write" in capsys.readouterr().err


def test_the_bundled_model_writes_on_cpu(tmp_path):
    run = checkpoint.load_run(checkpoint.BUILTIN_HANDWRITING)
    assert run.config.window_gaussians == 10
    size = os.path.getsize(os.path.join(run.path, checkpoint.WEIGHTS))
    assert size <= 20 * 2**20
    out = tmp_path / "hello.svg"
    assert main(["write", "Hello world", "-o", str(out), "--seed", "0", "--style", "0"]) == 0
    assert len(ET.parse(out).getroot().findall(".//{http://www.w3.org/2000/svg}path")) >= 2
    written = write_lines(run.model, run.config, run.vocab, ["Hello world", "a quick brown fox"], 1.5,
                          torch.Generator().manual_seed(0))
    assert written.stopped == [True, True]  # stopped by Graves' rule, not the cap
    for text, line in zip(written.texts, written.lines):
        assert 2 < len(line) < CAP_FACTOR * len(text) / run.config.chars_per_point


def test_the_bundled_model_scores_the_iamondb_sample(tmp_path, capsys, monkeypatch):
    sample = shared_data("handwriting", "iamondb-sample")
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "cache"))
    assert main(["evaluate", checkpoint.BUILTIN_HANDWRITING, "--data", sample, "--split", "all", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # An untrained network of the same shape scores +2,021 nats per line here (measured); below 0 it has
    # learnt the pen's movements and the text's alignment.
    assert result["lines"] == 32 and result["nats_per_line"] < 0, result


def test_a_synthesis_run_resumes_with_its_own_alphabet_and_statistics(tmp_path):
    out = str(tmp_path / "run")
    assert main(["train", "handwriting", "--preset", "graves-synthesis", "--set", *TINY, "--max-steps", "3",
                 "--out", out, "--device", "cpu"]) == 0
    before = checkpoint.read_header(out)["config"]
    assert main(["train", "handwriting", "--resume", "--out", out, "--max-steps", "6", "--device", "cpu"]) == 0
    after = checkpoint.read_header(out)["config"]
    for key in ("chars_per_step", "max_text_length", "mean_dx", "std_dy", "alphabet"):
        assert after[key] == before[key], key
    assert checkpoint.load_run(out).metadata["step"] == "6"
