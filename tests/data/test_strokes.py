"""rnnlab.data.strokes (the IAM-OnDB reader, offsets, thinning, the split by form) on the 4-form IAM-OnDB
sample and on small fake trees built in tmp_path.

References: the sample's own files, read here independently with regular expressions (points, <Stroke>
counts, CSR lines), the counts of SOURCE.md checked by hand (6 + 8 + 9 + 9 line XMLs; a08-551z's 8 CSR
lines become 9 at the %%% separator) and hashlib's sha256. The IAM-OnDB files are read from ../shared/data
(non-commercial research data: nothing of it is copied into the repository).
"""

import hashlib
import logging
import os
import re

import numpy as np
import pytest

from iamondb_fakes import GOOD, fake_tree, line_xml, sample, sample_lines  # noqa: F401 -- fixtures
from rnnlab.data import strokes as st
from rnnlab.errors import UserError

POINT = re.compile(r'<Point x="(-?\d+)" y="(-?\d+)"')
SAMPLE_FORMS = {"a01-000u": 6, "a01-001w": 8, "a01-001z": 9, "a08-551z": 9}  # line XMLs per form, by hand


def _xml_path(sample, line_id):
    form = line_id[:-3]
    return os.path.join(sample, "lineStrokes", form[:3], form[:7], f"{line_id}.xml")


def test_sample_counts_and_pairing(sample, sample_lines):
    lines, report = sample_lines
    assert {f: sum(l.form_id == f for l in lines) for f in SAMPLE_FORMS} == SAMPLE_FORMS
    assert (report.line_files, report.lines, report.skipped, report.clipped_steps) == (32, 32, {}, 0)
    text = {l.line_id: l.text for l in lines}
    assert text["a01-000u-01"] == "A MOVE to stop Mr . Gaitskell"  # IAM's spaced punctuation is kept
    assert text["a01-001z-09"] == "by Mr. Will Griffiths, MP for"
    # a08-551z: 9 XMLs, 8 CSR lines; the last one holds the %%% separator and becomes lines 08 and 09
    raw = open(os.path.join(sample, "ascii/a08/a08-551/a08-551z.txt"), encoding="latin-1").read()
    assert len([l for l in raw.split("CSR:")[1].splitlines() if l.strip()]) == 8
    assert (text["a08-551z-08"], text["a08-551z-09"]) == ("weeks to have a broken ankle bone", "pinned.")
    assert text["a08-551z-07"] == "and there he will stay for the next three"


def test_offsets_round_trip_to_the_xml_points(sample, sample_lines):
    for line in sample_lines[0]:
        xml = open(_xml_path(sample, line.line_id), encoding="latin-1").read()
        xy = np.array(POINT.findall(xml), dtype=np.float64)
        assert line.offsets.shape == (len(xy), 3) and line.offsets.dtype == np.float32
        assert line.offsets[0, :2].tolist() == [0.0, 0.0]
        points = st.offsets_to_points(line.offsets, start=(xy[0, 0], -xy[0, 1]))
        assert np.array_equal(points[:, 0], xy[:, 0]) and np.array_equal(points[:, 1], -xy[:, 1])
        # end_of_stroke: one per <Stroke>, on the last point of each
        per_stroke = [len(POINT.findall(s)) for s in xml.split("<Stroke ")[1:]]
        assert np.flatnonzero(line.offsets[:, 2]).tolist() == (np.cumsum(per_stroke) - 1).tolist()
        assert np.array_equal(st.points_to_offsets(points), line.offsets)


def test_y_points_up(sample):
    # Lines are written top to bottom on the whiteboard; with y up each line lies below the one before.
    for form, n in SAMPLE_FORMS.items():
        heights = [st.read_line_strokes(_xml_path(sample, f"{form}-{i:02d}"))[:, 1].mean() for i in range(1, n + 1)]
        assert np.all(np.diff(heights) < 0), (form, heights)


def test_clip_steps_on_a_synthetic_line():
    offsets = np.array([[0, 0, 0], [3, 4, 0], [3000, -4000, 1], [-10, 0, 1]], dtype=np.float32)
    clipped, n = st.clip_steps(offsets, max_length=1000.0)
    assert n == 1 and offsets[2, 0] == 3000  # the input is not modified
    np.testing.assert_allclose(clipped, [[0, 0, 0], [3, 4, 0], [600, -800, 1], [-10, 0, 1]], rtol=1e-6)
    assert st.clip_steps(offsets, None) == (offsets, 0)


def test_thin_strokes_keeps_every_nth_point_and_every_pen_lift():
    rng = np.random.default_rng(0)
    points = np.zeros((11, 3))
    points[:, :2] = rng.normal(size=(11, 2)).cumsum(axis=0)
    points[[4, 10], 2] = 1.0  # two strokes: points 0-4 and 5-10
    offsets = st.points_to_offsets(points)
    offsets[0, :2] = points[0, :2]  # a first step from the origin, as Hershey lines have
    points = st.offsets_to_points(offsets)
    thin = st.thin_strokes(offsets, 2)
    kept = [0, 2, 4, 5, 7, 9, 10]  # every 2nd point of each stroke, plus each stroke's last
    np.testing.assert_allclose(st.offsets_to_points(thin), points[kept], atol=1e-4)
    assert thin[:, 2].tolist() == [0, 0, 1, 0, 0, 0, 1]
    assert st.thin_strokes(offsets, 1) is offsets


# -------------------------------------------------------------------------------- fake layouts


def test_bad_files_are_skipped_with_counted_reasons(tmp_path, caplog):
    far = line_xml([[(100, 500), (1e9, 500)]])
    jump = line_xml([[(0, 0), (10, 0)], [(3010, 4000), (3020, 4000)]])  # a 5000-unit pen-up jump
    root = fake_tree(tmp_path, {
        "a01-100a": {"a01-100a-01.xml": GOOD, "a01-100a-02.xml": jump},
        "a01-101a": {"a01-101a-01.xml": "<StrokeSet><Stroke>", "a01-101a-02.xml": GOOD,
                     "a01-101a-03.xml": line_xml([]), "a01-101a-04.xml": far,
                     "a01-101a-05.xml": GOOD.replace('x="110"', 'x="abc"'), "notes.xml": GOOD},
        "a01-102a": {f"a01-102a-0{i}.xml": GOOD for i in (1, 2, 3)},  # 2 CSR lines for 3 XMLs
        "a01-103a": {"a01-103a-01.xml": GOOD},  # no transcription file
        "a01-104a": {"a01-104a-01.xml": GOOD},  # a transcription without CSR: section
        "z01-000z": {"z01-000z-01.xml": GOOD, "z01-000z-02.xml": GOOD},
    }, {"a01-100a": ["first line", "second line"], "a01-101a": ["l1", "l2", "l3", "l4", "l5"],
        "a01-102a": ["one", "two"], "a01-104a": None, "z01-000z": [st.PLACEHOLDER], "a01-999a": ["unused"]})
    fake_tree(tmp_path, {}, {"a01-105a": ["a line whose file cannot be opened"]})
    (tmp_path / "lineStrokes/a01/a01-105").mkdir()
    (tmp_path / "lineStrokes/a01/a01-105/a01-105a-01.xml").symlink_to(tmp_path / "gone.xml")  # dangling
    with caplog.at_level(logging.INFO, logger=st.__name__):
        lines, report = st.read_iamondb(root)
    assert [(l.line_id, l.text) for l in lines] == [
        ("a01-100a-01", "first line"), ("a01-100a-02", "second line"), ("a01-101a-02", "l2")]
    assert report.skipped == {"unrecognised_name": 1, "malformed_xml": 2, "empty_stroke_set": 1,
                              "absurd_coordinates": 1, "line_count_mismatch": 3, "no_transcription": 2,
                              "placeholder_transcription": 2, "unreadable_file": 1}
    assert report.line_files == 16 == report.lines + sum(report.skipped.values())
    assert report.examples["absurd_coordinates"].endswith("a01-101a-04.xml")
    assert (report.unused_transcriptions, report.clipped_steps, report.clipped_lines) == (1, 1, 1)
    assert np.hypot(*lines[1].offsets[2, :2]) == pytest.approx(st.MAX_STEP_LENGTH)
    assert "skipped 13 line XMLs" in caplog.text and "shortened 1 steps" in caplog.text


# --------------------------------------------------------------------------- the split by form


def test_split_is_deterministic_disjoint_and_by_text(sample_lines):
    lines = sample_lines[0]
    train, valid = st.split_by_form(lines, valid_fraction=0.5)
    again = st.split_by_form(list(reversed(lines)), valid_fraction=0.5)  # the order of the lines is irrelevant
    assert [sorted(l.line_id for l in side) for side in again] == [sorted(l.line_id for l in side) for side in (train, valid)]
    assert sorted(l.line_id for l in train + valid) == sorted(l.line_id for l in lines)
    assert not {l.form_id for l in train} & {l.form_id for l in valid}
    assert not {l.form_id[:7] for l in train} & {l.form_id[:7] for l in valid}  # a01-001w and a01-001z together
    expected = {f for f in SAMPLE_FORMS if int.from_bytes(hashlib.sha256(f[:7].encode()).digest()[:8], "big") < 2**63}
    assert {l.form_id for l in valid} == expected
    assert {l.form_id for l in st.split_by_form(lines[::3], 0.5)[1]} <= expected  # a form's side ignores the others
    assert st.split_by_form(lines, 0.0) == (lines, [])
    with pytest.raises(UserError, match="valid_fraction"):
        st.split_by_form(lines, 1.0)
