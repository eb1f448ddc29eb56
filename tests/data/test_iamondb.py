"""rnnlab.data.iamondb: loading IAM-OnDB from a folder or its .tar.xz, the .npz cache, the split with its
training statistics, and the one-line errors for paths that are no IAM-OnDB.

References: rnnlab.data.strokes.read_iamondb on the same files (the cache and the archive must give what
reading the folder gives), numpy's mean/std for the statistics, and the 4-form sample of ../shared/data.
"""

import os

import numpy as np
import pytest

from iamondb_fakes import GOOD, fake_tree, pack, sample, sample_lines  # noqa: F401 -- fixtures
from rnnlab.data import iamondb as db
from rnnlab.data import strokes as st
from rnnlab.errors import UserError


def _same(a, b):
    assert [(l.form_id, l.line_id, l.text) for l in a] == [(l.form_id, l.line_id, l.text) for l in b]
    assert all(np.array_equal(x.offsets, y.offsets) and x.offsets.dtype == y.offsets.dtype for x, y in zip(a, b))


def test_paths_without_the_layout_are_user_errors(sample, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "not.tar.xz").write_bytes(b"not an archive")
    (tmp_path / "lines.txt").write_text("a text file, not handwriting\n" * 100)
    (tmp_path / "nothing.tar.xz").write_bytes(b"")
    whole = pack(sample, tmp_path / "whole.tar.xz").read_bytes()
    (tmp_path / "cut.tar.xz").write_bytes(whole[: len(whole) // 3])
    bare = fake_tree(tmp_path / "bare", {}, {"a01-100a": ["text"]})
    (tmp_path / "bare" / "lineStrokes").mkdir()
    placeholders = fake_tree(tmp_path / "ph", {"z01-000z": {"z01-000z-01.xml": GOOD}}, {"z01-000z": [st.PLACEHOLDER]})
    for path, message in [(tmp_path / "missing", "does not exist"), (tmp_path / "empty", "lineStrokes/"),
                          (tmp_path / "not.tar.xz", "not a tar archive"), (tmp_path / "lines.txt", "not a tar archive"),
                          (tmp_path / "nothing.tar.xz", "an empty file"), (tmp_path / "cut.tar.xz", "damaged or truncated"),
                          (bare, "holds no line XML"), (placeholders, "no usable line")]:
        with pytest.raises(UserError, match=message) as error:
            db.load_iamondb(str(path), cache_root=str(tmp_path / "cache"))
        assert "\n" not in str(error.value)  # the CLI prints one line (tarfile's own message has five)
    assert not [p for p in os.listdir(tmp_path / "cache" / "iamondb") if p.startswith((".unpacking", "tree-"))]


def test_stats_come_from_the_training_split_only(sample, tmp_path):
    splits = db.load_splits(sample, valid_fraction=0.5, cache_root=str(tmp_path))
    assert splits.train and splits.valid
    steps = np.concatenate([l.offsets[1:, :2] for l in splits.train]).astype(np.float64)
    mean, std = steps.mean(0), steps.std(0)
    s = splits.stats
    assert [s.mean_dx, s.mean_dy, s.std_dx, s.std_dy] == pytest.approx([*mean, *std], rel=1e-12)
    everything = st.StrokeStats.from_offsets([line.offsets for line in splits.train + splits.valid])
    assert everything.mean_dy != pytest.approx(s.mean_dy, rel=1e-3)
    normalised = np.concatenate([s.normalise(l.offsets)[1:] for l in splits.train]).astype(np.float64)
    np.testing.assert_allclose(normalised[:, :2].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(normalised[:, :2].std(0), 1, atol=1e-5)
    assert np.array_equal(normalised[:, 2], np.concatenate([l.offsets[1:, 2] for l in splits.train]))
    np.testing.assert_allclose(s.denormalise(s.normalise(splits.valid[0].offsets)), splits.valid[0].offsets, atol=1e-3)
    with pytest.raises(UserError, match="no training lines: valid_fraction=0.95 held out all 4 forms"):
        db.load_splits(sample, valid_fraction=0.95, cache_root=str(tmp_path))


def test_npz_cache_round_trip_without_pickle(sample, sample_lines, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path))  # the default cache root
    lines, report = db.load_iamondb(sample)
    _same(lines, sample_lines[0])
    (cached,) = [p for p in os.listdir(tmp_path / "iamondb") if p.endswith(".npz")]
    assert cached.startswith(f"lines-v{db.CACHE_VERSION}-")
    with np.load(tmp_path / "iamondb" / cached, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    monkeypatch.setattr(db, "read_iamondb", lambda *a, **k: pytest.fail("the second load must use the cache"))
    with caplog.at_level("INFO", logger="rnnlab.data.strokes"):
        again, report_again = db.load_iamondb(sample)
    _same(again, sample_lines[0])
    assert report_again == report
    skipped = sum(report.skipped.values())
    assert f"(cached); skipped {skipped} line XMLs" in caplog.text  # the skip count is told at every load
    (tmp_path / "iamondb" / cached).write_bytes(b"truncated")  # a damaged cache is rebuilt, not trusted
    monkeypatch.setattr(db, "read_iamondb", lambda *a, **k: sample_lines)
    assert db.load_iamondb(sample)[0] is sample_lines[0]


def test_reading_a_tar_xz_equals_reading_the_folder(sample, sample_lines, tmp_path):
    archive = pack(sample, tmp_path / "sample.tar.xz", evil=True)
    cache = tmp_path / "cache"
    lines, report = db.load_iamondb(str(archive), cache_root=str(cache))
    _same(lines, sample_lines[0])
    assert report.skipped == {} and report.lines == 32
    assert sorted(p[:5] for p in os.listdir(cache / "iamondb")) == ["lines", "tree-"]  # no .unpacking-* left
    assert not (tmp_path / "escaped.txt").exists() and not (cache / "escaped.txt").exists()


def test_the_cache_key_follows_the_files(tmp_path):
    root = fake_tree(tmp_path / "db", {"a01-100a": {"a01-100a-01.xml": GOOD}}, {"a01-100a": ["before"]})
    cache = str(tmp_path / "cache")
    assert db.load_iamondb(root, cache_root=cache)[0][0].text == "before"
    fake_tree(tmp_path / "db", {}, {"a01-100a": ["after, a longer text"]})  # an edit deep in ascii/
    assert db.load_iamondb(root, cache_root=cache)[0][0].text == "after, a longer text"
    db.load_iamondb(root, cache_root=cache, max_step=None)  # another threshold, another cache file
    assert len([p for p in os.listdir(os.path.join(cache, "iamondb")) if p.endswith(".npz")]) == 2  # "before" is gone


def test_a_changed_archive_replaces_its_old_cache_entries_and_keeps_other_sources(sample, tmp_path):
    archive = pack(sample, tmp_path / "sample.tar.xz")
    cache = tmp_path / "cache"
    db.load_iamondb(sample, cache_root=str(cache))  # another source in the same cache
    db.load_iamondb(str(archive), cache_root=str(cache))
    before = set(os.listdir(cache / "iamondb"))
    assert len(before) == 3  # the folder's .npz, the archive's .npz and its unpacked tree
    os.utime(archive, ns=(0, 10**18))  # as a re-download would: same path, another mtime
    lines, _ = db.load_iamondb(str(archive), cache_root=str(cache))
    after = set(os.listdir(cache / "iamondb"))
    assert len(after) == 3 and len(before & after) == 1  # only the folder's entry survives; nothing piles up
    assert len(lines) == 32
