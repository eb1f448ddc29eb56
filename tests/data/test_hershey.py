"""rnnlab.data.hershey, synthetic handwriting from the Hershey fonts, against the hershey-fonts package's own
renderer (its strokes for the same text, scale, spacing and slant) and against hand counts of glyph strokes."""

import math
import string

import numpy as np
import pytest
import torch
from HersheyFonts import HersheyFonts

from rnnlab.data import hershey
from rnnlab.data.hershey import MAX_STEP, WORDS, Style, random_lines, render_text
from rnnlab.data.strokes import absolute_to_offsets, offsets_to_points
from rnnlab.errors import UserError

TEXT = "Hello world, quick fox!"


def font_reference(text, scale=1.0, spacing=0.0, slant_deg=0.0):
    """The strokes of ``text`` laid out by the hershey-fonts package's own renderer, y flipped to point up."""
    font = HersheyFonts()
    font.load_default_font(hershey.FONT)
    base_line = font.render_options["base_line"]
    font.render_options.scalex = font.render_options.scaley = scale
    font.render_options.spacing = spacing * scale
    shear = math.tan(math.radians(slant_deg))
    strokes = []
    for stroke in font.strokes_for_text(text):
        xy = np.array(stroke, dtype=np.float64)
        y = base_line * scale - xy[:, 1]
        strokes.append(np.stack([xy[:, 0] + shear * y, y], axis=1))
    return font, strokes


def split_strokes(offsets):
    points = offsets_to_points(offsets)
    return [s[:, :2] for s in np.split(points, np.flatnonzero(points[:, 2] == 1) + 1) if len(s)]


def test_stroke_count_is_the_sum_of_the_glyphs_stroke_counts():
    font, _ = font_reference(TEXT)
    line = render_text(TEXT, style=Style())
    per_char = [len(font.all_glyphs[c].strokes) for c in TEXT]
    assert line.offsets.dtype == np.float32 and line.offsets.shape[1] == 3
    assert line.offsets[:, 2].sum() == sum(per_char) == 33  # H 2, w 3, k 3, ! 4, ..., a space 0
    assert line.offsets[-1, 2] == 1  # the line ends with the pen lifting
    for (start, end), count in zip(line.bounds, per_char):
        assert line.offsets[start:end, 2].sum() == count


@pytest.mark.parametrize("style", [Style(), Style(slant_deg=20.0, scale=1.5, spacing=2.0)])
def test_strokes_pass_through_the_font_vertices_in_order_with_short_steps(style):
    _, reference = font_reference(TEXT, style.scale, style.spacing, style.slant_deg)
    strokes = split_strokes(render_text(TEXT, style=style).offsets)
    assert len(strokes) == len(reference)
    for ours, theirs in zip(strokes, reference):
        assert np.allclose(ours[0], theirs[0], atol=1e-3) and np.allclose(ours[-1], theirs[-1], atol=1e-3)
        # Every font vertex appears, in order; densification only adds points between them.
        i = 0
        for vertex in theirs:
            while i < len(ours) and not np.allclose(ours[i], vertex, atol=1e-3):
                i += 1
            assert i < len(ours), f"vertex {vertex} missing or out of order"
        steps = np.hypot(*np.diff(ours, axis=0).T)
        assert steps.max() <= MAX_STEP + 1e-3


def test_character_bounds_cover_the_points_in_order_left_to_right():
    text = "hello world"
    line = render_text(text, style=Style())
    bounds = line.bounds
    assert bounds.shape == (len(text), 2)
    assert bounds[0, 0] == 0 and bounds[-1, 1] == len(line.offsets)
    assert (bounds[1:, 0] == bounds[:-1, 1]).all()  # contiguous, in order
    assert bounds[text.index(" ")].tolist() == [bounds[5, 0]] * 2  # the space draws nothing
    points = offsets_to_points(line.offsets)
    extents = [(points[a:b, 0].min(), points[a:b, 0].max()) for a, b in bounds if b > a]
    assert len(extents) == len(text) - 1
    for (lo0, hi0), (lo1, hi1) in zip(extents, extents[1:]):
        assert lo1 > lo0 and hi1 > hi0
    for a, b in bounds:
        if b > a:
            assert line.offsets[b - 1, 2] == 1  # every character finishes its last stroke


@pytest.mark.parametrize("make", [np.random.default_rng, lambda seed: torch.Generator().manual_seed(seed)])
def test_same_seed_same_strokes(make):
    a, b, c = (render_text(TEXT, make(seed)) for seed in (7, 7, 8))
    assert a.style == b.style and np.array_equal(a.offsets, b.offsets) and np.array_equal(a.bounds, b.bounds)
    assert a.style != c.style and not np.array_equal(a.offsets[:5], c.offsets[:5])
    lines_a, lines_b = random_lines(3, make(1)), random_lines(3, make(1))
    assert [x.text for x in lines_a] == [x.text for x in lines_b]
    assert all(np.array_equal(x.offsets, y.offsets) for x, y in zip(lines_a, lines_b))


def test_random_style_stays_in_range_and_jitter_has_its_std():
    rng = np.random.default_rng(0)
    for _ in range(20):
        style = hershey.random_style(rng)
        assert hershey.SLANT_DEG[0] <= style.slant_deg <= hershey.SLANT_DEG[1]
        assert hershey.SCALE[0] <= style.scale <= hershey.SCALE[1]
        assert hershey.SPACING[0] <= style.spacing <= hershey.SPACING[1]
    noisy = render_text(TEXT, rng, style=Style(jitter=0.5))
    clean = render_text(TEXT, style=Style())
    noise = offsets_to_points(noisy.offsets)[:, :2] - offsets_to_points(clean.offsets)[:, :2]
    assert noise.std() == pytest.approx(0.5, rel=0.1)
    assert np.array_equal(noisy.offsets[:, 2], clean.offsets[:, 2])


def test_unknown_characters_are_all_listed():
    with pytest.raises(UserError, match=r"3 characters: '\\n', 'é', 'ñ'"):
        render_text("café\nniño", style=Style())
    with pytest.raises(UserError, match="no visible character"):
        render_text("   ", style=Style())
    with pytest.raises(UserError, match="random style from rng"):
        render_text("hi")
    with pytest.raises(UserError, match="numpy.random.Generator or a torch.Generator, received int"):
        render_text("hi", 3)
    assert hershey.supported_characters() == "".join(map(chr, range(32, 127)))


def test_offsets_absolute_round_trip():
    offsets = np.array([[1, 2, 0], [3, -1, 1], [-2, 0, 1]], dtype=np.float32)
    assert offsets_to_points(offsets).tolist() == [[1, 2, 0], [4, 1, 1], [2, 1, 1]]
    line = render_text(TEXT, np.random.default_rng(0))
    back = absolute_to_offsets(offsets_to_points(line.offsets))
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, line.offsets, atol=1e-5)


def test_random_lines_use_the_word_list_which_covers_the_alphabet():
    assert set("".join(WORDS)) == set(string.ascii_lowercase)
    lines = random_lines(5, np.random.default_rng(0), min_words=2, max_words=3)
    for line in lines:
        words = line.text.split(" ")
        assert 2 <= len(words) <= 3 and set(words) <= set(WORDS)
        assert line.bounds.shape == (len(line.text), 2) and line.bounds[-1, 1] == len(line.offsets)
    with pytest.raises(UserError, match="min_words <= max_words"):
        random_lines(1, np.random.default_rng(0), min_words=4, max_words=2)
