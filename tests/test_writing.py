"""rnnlab.writing: batched writing that stops by Graves' rule or at the cap (on a network whose window moves at
a speed set by hand, so the number of points is known in advance), priming with a style, the data's units,
:class:`Handwriting` and its files (.svg, .png, .json, .npy, read back and compared by value), the page
layout, splitting and checking the user's text, and reading style files."""

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from rnnlab.data.strokes import StrokeStats, offsets_to_points, thin_strokes
from rnnlab.data.text import Vocab
from rnnlab.errors import UserError
from rnnlab.models import HandwritingSynthesizer
from rnnlab.writing import (CAP_FACTOR, MAX_BIAS, Handwriting, Style, check_bias, check_texts, layout_page,
                            read_style_file, read_styles, split_lines, write_lines, write_stream)

SVG = "{http://www.w3.org/2000/svg}"
WRITING = Vocab(list("acemnorsuvwxz "), "char")
PLAIN = StrokeStats(0.0, 0.0, 1.0, 1.0)  # the network's normalised units are the data's


def forced_speed_model(chars_per_point: float):
    """A model whose window moves at a fixed speed whatever it reads: zero weights, a set kappa bias."""
    torch.manual_seed(0)
    model = HandwritingSynthesizer(len(WRITING), hidden_size=8, num_layers=2, mixtures=2, gaussians=1)
    with torch.no_grad():
        model.window.linear.weight.zero_()
        model.window.linear.bias.copy_(torch.tensor([0.0, 0.0, math.log(chars_per_point)]))
    return model


def write(model, texts, stats=PLAIN, chars_per_point=0.1, style=None, seed=0, bias=0.0):
    return write_lines(model, WRITING, texts, bias, torch.Generator().manual_seed(seed), stats, chars_per_point, style)


# -------------------------------------------------------------------------------------------- write_lines


def test_lines_stop_when_the_window_passes_their_last_character():
    model = forced_speed_model(0.25)  # 4 points per character
    texts = ["ace", "nosvwxz"]
    written = write(model, texts)
    assert written.texts == texts and written.stopped == [True, True]
    # phi(U + 1) overtakes phi(U) once kappa > U + 1/2 (at U + 1/2 they tie). Before point t (from 0) is drawn
    # kappa = 0.25 (t + 1), so the check before point 4U + 2 stops the line: 4U + 2 points.
    assert [len(line) for line in written.lines] == [4 * len(t) + 2 for t in texts]
    for line, phi, text in zip(written.lines, written.attention, texts):
        assert line.dtype == np.float32 and phi.shape == (len(line), len(text) + 1)
        assert line[-1, 2] == 1.0  # the pen lifts at the end of the line
        # the window weights of one Gaussian of unit alpha and beta at kappa = 0.25 (t + 1) (eq. 46)
        kappa = 0.25 * np.arange(1, len(line) + 1)[:, None]
        np.testing.assert_allclose(phi, np.exp(-(kappa - np.arange(1, len(text) + 2)) ** 2), rtol=1e-5, atol=1e-7)


def test_a_window_that_never_moves_is_cut_at_the_cap():
    model = forced_speed_model(1e-6)
    written = write(model, ["ac", "nosw"], chars_per_point=0.5)
    assert written.stopped == [False, False]
    assert [len(line) for line in written.lines] == [math.ceil(CAP_FACTOR * n / 0.5) for n in (2, 4)]


def test_priming_reads_the_style_and_the_window_covers_only_the_new_text():
    model = forced_speed_model(0.25)
    style = Style("zz", np.tile(np.array([[1.0, 0.0, 0.0]], np.float32), (8, 1)))
    written = write(model, ["ace"], style=style)
    # 9 steps (the zero row and the 8 primer points) moved the window to 2.25; the text is "zz ace" (U = 6), so
    # before point t kappa = 2.25 + 0.25 t, past 6.5 first at t = 18: 18 points
    assert written.stopped == [True] and len(written.lines[0]) == 18
    assert written.attention[0].shape == (18, 4)
    # the columns are "a", "c", "e" and the end, i.e. u = 4 .. 7 of "zz ace"
    kappa = 2.25 + 0.25 * np.arange(18)[:, None]
    np.testing.assert_allclose(written.attention[0], np.exp(-(kappa - np.arange(4, 8)) ** 2), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("chunk", [1, 3, 8, 1000, 0])
def test_the_stream_gives_every_line_in_chunks_never_revised_then_the_same_handwriting(chunk):
    model = forced_speed_model(0.25)  # lines of 14, 30 and 10 points: they end at different steps
    texts, stats = ["ace", "nosvwxz", "zo"], StrokeStats(2.0, -1.0, 3.0, 0.5)
    pieces = list(write_stream(model, WRITING, texts, 1.0, torch.Generator().manual_seed(3), stats, 0.1,
                               chunk=chunk))
    *chunks, written = pieces
    copies = [(c.line, c.offsets.copy()) for c in chunks]
    expected = write_lines(model, WRITING, texts, 1.0, torch.Generator().manual_seed(3), stats, 0.1)
    assert isinstance(written, Handwriting) and written.stopped == expected.stopped == [True] * 3
    for i, line in enumerate(expected.lines):
        mine = [offsets for n, offsets in copies if n == i]
        assert all(len(m) for m in mine) and len(mine) >= (min(len(line) // chunk, 2) - 1 if chunk else 1)
        if chunk in (0, 1000):  # no chunk before a line's end: one chunk, the whole line
            assert len(mine) == 1
        assert np.concatenate(mine).tobytes() == line.tobytes() == written.lines[i].tobytes()
        assert np.array_equal(written.attention[i], expected.attention[i])
    for (n, copy), c in zip(copies, chunks):
        assert np.array_equal(copy, c.offsets)  # nothing given out was changed afterwards
    if chunk == 1:  # every point is given out one step after it is drawn, all lines together
        assert [n for n, _ in copies[:6]] == [0, 1, 2, 0, 1, 2]


def test_the_lines_are_in_the_data_units_and_the_seed_fixes_them():
    model = forced_speed_model(0.25)
    plain = write(model, ["ace", "now"], seed=3, bias=0.5)
    stats = StrokeStats(4.0, -1.0, 20.0, 30.0)
    scaled = write(model, ["ace", "now"], stats, seed=3, bias=0.5)
    again = write(model, ["ace", "now"], stats, seed=3, bias=0.5)
    for a, b, c in zip(plain.lines, scaled.lines, again.lines):
        np.testing.assert_allclose(b[:, :2], a[:, :2] * [20.0, 30.0] + [4.0, -1.0], rtol=1e-5, atol=1e-4)
        assert np.array_equal(b[:, 2], a[:, 2]) and np.array_equal(b, c)
    other = write(model, ["ace", "now"], stats, seed=4, bias=0.5)
    assert not np.array_equal(other.lines[0], scaled.lines[0])


# ------------------------------------------------------------------------------- Handwriting and its files


def written_page():
    return write(forced_speed_model(0.25), ["ace", "now"], StrokeStats(4.0, -1.0, 20.0, 30.0), seed=1)


def svg_paths(text):
    return ET.fromstring(text).findall(f".//{SVG}path")


def test_handwriting_saves_svg_png_json_and_npy(tmp_path):
    written = written_page()
    page, height = written.page()
    expected_page, expected_height = layout_page(written.lines)
    assert np.array_equal(page, expected_page) and height == expected_height
    assert written._repr_svg_() == written.to_svg()
    strokes = int(sum(line[:, 2].sum() for line in written.lines))
    assert len(svg_paths(written.to_svg())) == strokes  # one path per stroke, and each line ends its last

    written.save(str(tmp_path / "a.svg"))
    assert (tmp_path / "a.svg").read_text() == written.to_svg()
    written.save(str(tmp_path / "a.png"))
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written.save(str(tmp_path / "a.json"))
    saved = json.loads((tmp_path / "a.json").read_text())
    assert [line["text"] for line in saved["lines"]] == ["ace", "now"]
    assert [line["stopped"] for line in saved["lines"]] == written.stopped
    for line, array in zip(saved["lines"], written.lines):
        offsets = np.array(line["offsets"], np.float32)
        assert np.array_equal(offsets, array.round(4))  # rounded to 4 decimals: 1/10000 of a data unit
        np.testing.assert_allclose(offsets, array, rtol=0, atol=1e-4)
    written.save(str(tmp_path / "a.npy"))
    array = np.load(tmp_path / "a.npy", allow_pickle=False)
    assert array.dtype == np.float32 and np.array_equal(array, page)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.npy", "a.png", "a.svg"]  # no temporary left


def test_an_unconditional_sample_is_drawn_as_sampled(tmp_path):
    line = np.array([[0, 0, 0], [3, 4, 0], [2, -1, 1], [5, 0, 1]], np.float32)
    sample = Handwriting([""], [line], [False])
    page, size = sample.page()
    assert page is line and size is None  # no page layout: the drawing's own extent sets its size
    sample.save(str(tmp_path / "s.npy"))
    assert np.array_equal(np.load(tmp_path / "s.npy"), line)
    with pytest.raises(UserError, match="no window to plot"):
        sample.save_attention(str(tmp_path / "att.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npy"]


@pytest.mark.parametrize("name", ["a.gif", "a.txt", "a"])
def test_a_bad_extension_is_refused_and_writes_nothing(tmp_path, name):
    with pytest.raises(UserError, match=r"\.svg, \.png, \.json or \.npy"):
        written_page().save(str(tmp_path / name))
    with pytest.raises(UserError, match="does not exist"):
        written_page().save(str(tmp_path / "missing" / "a.json"))
    assert list(tmp_path.iterdir()) == []


def test_layout_page_stacks_lines_under_each_other():
    line = np.array([[0, 0, 0], [10, 10, 0], [10, -10, 1]], np.float32)
    page, height = layout_page([line, line])
    points = np.cumsum(page[:, :2], axis=0)
    assert height == 10 and len(page) == 6
    assert points[3:, 1].max() < points[:3, 1].min()  # the second line lies below the first
    assert page[2, 2] == 1.0  # pen up between the lines
    # left-aligned, each line's median on y = 0 for the first, one line spacing (1.4 heights) lower for the next
    np.testing.assert_allclose(points, [[0, 0], [10, 10], [20, 0], [0, -14], [10, -4], [20, -14]], atol=1e-5)
    with pytest.raises(UserError, match="drew no point"):
        layout_page([np.zeros((0, 3), np.float32)])


# ------------------------------------------------------------------------------------- the user's text


def test_split_lines_at_newlines_and_optionally_at_spaces():
    assert split_lines("  the cow\\n\n saw me \n") == ["the cow", "saw me"]
    text = "the quick brown fox jumps over the lazy dog"
    wrapped = split_lines(text, wrap=12)
    assert wrapped == ["the quick", "brown fox", "jumps over", "the lazy dog"]
    assert " ".join(wrapped) == text and all(len(line) <= 12 for line in wrapped)
    assert split_lines("a extraordinarily b", wrap=5) == ["a", "extraordinarily", "b"]  # a word is never cut
    with pytest.raises(UserError, match="empty"):
        split_lines(" \n \\n ")
    with pytest.raises(UserError, match="--wrap must be"):
        split_lines("the cow", wrap=-1)


def test_check_texts_names_every_unknown_character_and_the_longest_line():
    check_texts(["ace", "now"], WRITING, 3)
    check_texts(["cow " * 30], WRITING, 0)  # 0: no limit known
    with pytest.raises(UserError, match=r"2 characters the model's vocabulary lacks: 'h', '@'"):
        check_texts(["ace", "h@"], WRITING, 10)
    with pytest.raises(UserError, match="line 2 has 7 characters.*at most 5.*--wrap 5"):
        check_texts(["ace", "cow now"], WRITING, 5)
    with pytest.raises(UserError, match="line 1 is one word of 6 characters.*break it with a space"):
        check_texts(["cowcow"], WRITING, 5)


def test_check_bias_takes_0_to_the_maximum():
    for bias in (0.0, 1.5, MAX_BIAS):
        check_bias(bias)
    for bias in (-0.1, MAX_BIAS + 0.1, float("nan")):
        with pytest.raises(UserError, match="--bias must be between"):
            check_bias(bias)


# ------------------------------------------------------------------------------------------------ styles


def test_style_files_are_read_and_thinned_like_the_training_lines(tmp_path):
    offsets = np.array([[0, 0, 0], [1, 2, 0], [3, 1, 0], [2, 2, 1], [5, 0, 0], [1, 1, 1]], np.float32)
    path = tmp_path / "style.json"
    path.write_text(json.dumps({"text": " was ", "offsets": offsets.tolist()}))
    style = read_style_file(str(path))
    assert style.text == "was" and np.array_equal(style.offsets, offsets)
    thinned = read_style_file(str(path), point_stride=2)
    assert np.array_equal(thinned.offsets, thin_strokes(offsets, 2)) and len(thinned.offsets) < len(offsets)
    np.testing.assert_allclose(offsets_to_points(thinned.offsets)[-1], offsets_to_points(offsets)[-1])  # same end
    many = tmp_path / "styles.json"
    entries = [{"text": "a", "offsets": offsets.tolist()}, {"text": "b", "offsets": offsets[:2].tolist()}]
    many.write_text(json.dumps(entries))
    assert [(s.text, len(s.offsets)) for s in read_styles(str(many))] == [("a", 6), ("b", 2)]


@pytest.mark.parametrize("content, message", [
    (json.dumps({"text": "ab", "offsets": [[1, 2]]}), "must hold"),
    (json.dumps({"text": "ab", "offsets": [[1, 2, 0]]}), "must hold"),  # one row
    (json.dumps({"text": " ", "offsets": [[1, 2, 0], [1, 1, 1]]}), "must hold"),
    (json.dumps({"text": "ab", "offsets": [[1, 2, 0], [float("nan"), 1, 1]]}), r"\(NaN is not a JSON number\)"),
    (json.dumps({"text": "ab", "offsets": [[1, 2, 0], [1e39, 1, 1]]}), "must hold"),  # beyond float32: inf
    (json.dumps({"offsets": [[1, 2, 0], [1, 1, 1]]}), "must hold"),
    (json.dumps(["not", "an object"]), "must hold"),
    ("{not json", "not readable JSON"),
    (None, "does not exist; give a style number or a JSON file"),
], ids=["two-columns", "one-row", "blank-text", "nan", "beyond-float32", "no-text", "a-list", "not-json", "missing"])
def test_a_bad_style_file_is_one_line(tmp_path, content, message):
    path = tmp_path / "style.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message) as error:
        read_style_file(str(path))
    assert "\n" not in str(error.value)
