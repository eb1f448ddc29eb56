"""IAM-OnDB from a folder or the ``.tar.xz`` archive, through a cache: the archive is unpacked once and the
lines read by ``strokes.read_iamondb`` are stored as one ``.npz`` (no pickle), so a second run starts in
about a second. The cache is ``<$RNNLAB_DATA or ~/.cache/rnnlab>/iamondb/``, never the repository.
"""

import contextlib
from dataclasses import asdict, dataclass
import hashlib
import json
import logging
import lzma
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib

import numpy as np

from ..errors import UserError
from ..files import atomic_write
from .download import cache_dir
from .strokes import MAX_STEP_LENGTH, VALID_FRACTION, Line, ReadReport, StrokeStats, layout_root, read_iamondb, split_by_form

log = logging.getLogger(__name__)

CACHE_SUBDIR = "iamondb"  # <cache>/iamondb/: the unpacked archive and the preprocessed .npz files
CACHE_VERSION = 1  # bump when the content of the .npz changes, so old caches are rebuilt, not misread


def load_iamondb(source: str, cache_root: str | None = None,
                 max_step: float | None = MAX_STEP_LENGTH) -> tuple[list[Line], ReadReport]:
    """Lines and report from the IAM-OnDB folder or ``.tar.xz`` at ``source``, through the cache
    ``<cache_root or $RNNLAB_DATA or ~/.cache/rnnlab>/iamondb/``: the archive is unpacked there once and
    the lines are stored as ``lines-v<CACHE_VERSION>-<source>-<state>-<max_step>.npz``: hashes of the source's
    path, of its size and mtime (every file's, for a folder) and of ``max_step``. When the source changes, the
    entries of its previous state are deleted, so a re-downloaded archive does not leave 0.5 GB behind."""
    source = os.path.abspath(os.path.expanduser(source))
    if not os.path.exists(source):
        raise UserError(f"{source} does not exist; give the IAM-OnDB folder or iamondb_lineStrokes_ascii.tar.xz")
    folder = os.path.join(cache_root or cache_dir(), CACHE_SUBDIR)
    source_key, state_key = _digest(source), _state(source)
    cached = os.path.join(folder, f"lines-v{CACHE_VERSION}-{source_key}-{state_key}-{_digest(repr(max_step))}.npz")
    if os.path.isfile(cached):
        try:
            lines, report = _load_npz(cached)
            report.log_summary(lines, f"{source} (cached)", max_step)
            return lines, report
        except (OSError, ValueError, KeyError, MemoryError, zipfile.BadZipFile) as e:  # a damaged cache: rebuilt
            log.warning("cache %s is unreadable (%s); rebuilding it", cached, e)
    root = _unpack(source, folder, f"{source_key}-{state_key}") if os.path.isfile(source) else source
    lines, report = read_iamondb(root, max_step)
    _save_npz(cached, lines, report)
    _forget_other_states(folder, source_key, state_key)
    return lines, report


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _state(source: str) -> str:
    """A hash of the size and mtime of ``source``, or of every file below it: an edit anywhere changes it."""
    if os.path.isfile(source):
        return _digest(f"{os.path.getsize(source)}:{os.stat(source).st_mtime_ns}")
    parts = []  # 13k stats take well under a second
    for dirpath, dirs, names in os.walk(source):
        dirs.sort()
        for name in sorted(names):
            stat = os.stat(os.path.join(dirpath, name))
            parts.append(f"{os.path.relpath(os.path.join(dirpath, name), source)}:{stat.st_size}:{stat.st_mtime_ns}")
    return _digest("\n".join(parts))


def _forget_other_states(folder: str, source_key: str, state_key: str) -> None:
    """Delete the unpacked trees and .npz files of ``source_key``'s other states (and older cache versions)."""
    current = (f"tree-{source_key}-{state_key}", f"lines-v{CACHE_VERSION}-{source_key}-{state_key}-")
    for name in os.listdir(folder):
        ours = name.startswith(f"tree-{source_key}-") or (name.startswith("lines-v") and f"-{source_key}-" in name
                                                          and name.endswith(".npz"))
        if ours and not name.startswith(current):
            path = os.path.join(folder, name)
            log.info("removing %s: its source has changed since", path)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):  # another run started on the same archive got there first
                    os.remove(path)


def _unpack(archive: str, folder: str, key: str) -> str:
    """Extract ``archive`` once into ``folder/tree-<key>`` (via a temporary folder renamed when complete)."""
    target = os.path.join(folder, f"tree-{key}")
    if not os.path.isdir(target):
        os.makedirs(folder, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".unpacking-", dir=folder)
        try:
            with _open_tar(archive) as tar:
                log.info("unpacking %s into %s", archive, target)
                for member in tar:  # regular files with relative names only: no links, no escape by ".."
                    name = os.path.normpath(member.name)
                    if member.isfile() and not os.path.isabs(name) and not name.startswith(".."):
                        os.makedirs(os.path.join(tmp, os.path.dirname(name)), exist_ok=True)
                        with tar.extractfile(member) as src, open(os.path.join(tmp, name), "wb") as dst:
                            shutil.copyfileobj(src, dst)
            os.rename(tmp, target)  # atomic: a crash leaves only .unpacking-*, never a partial tree-<key>
        except (tarfile.TarError, lzma.LZMAError, EOFError, zlib.error) as e:
            reason = (str(e).splitlines() or [type(e).__name__])[0]  # one line: the CLI prints one
            raise UserError(f"{archive} is a damaged or truncated archive ({reason}); give "
                            f"iamondb_lineStrokes_ascii.tar.xz as distributed or the folder unpacked from it") from None
        except OSError:
            if not os.path.isdir(target):  # else another process finished the same unpacking first
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return layout_root(target)


def _open_tar(archive: str) -> tarfile.TarFile:
    """``archive`` opened as a plain, gzip, bzip2 or xz tar; a file that is none of them is a UserError."""
    try:
        return tarfile.open(archive, "r:*")
    except tarfile.ReadError:  # its message lists every method tried, one per line: not for the user
        what = "an empty file" if os.path.getsize(archive) == 0 else "not a tar archive (plain, .gz, .bz2 or .xz)"
        raise UserError(f"{archive} is {what}; give the IAM-OnDB folder or iamondb_lineStrokes_ascii.tar.xz "
                        f"as distributed") from None


def _save_npz(path: str, lines: list[Line], report: ReadReport) -> None:
    """Ragged lines as one (sum N, 3) array cut at ``bounds`` (L + 1,); strings as unicode arrays: no pickle."""
    os.makedirs(os.path.dirname(path), exist_ok=True)

    def write(tmp):
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to the temporary name
            np.savez(f, version=np.int64(CACHE_VERSION), offsets=np.concatenate([l.offsets for l in lines]),
                     bounds=np.cumsum([0] + [len(l.offsets) for l in lines]), form_ids=np.array([l.form_id for l in lines]),
                     line_ids=np.array([l.line_id for l in lines]), texts=np.array([l.text for l in lines]),
                     report=np.array(json.dumps(asdict(report))))

    atomic_write(path, write)
    log.info("cached %d lines in %s", len(lines), path)


def _load_npz(path: str) -> tuple[list[Line], ReadReport]:
    with np.load(path, allow_pickle=False) as z:
        if int(z["version"]) != CACHE_VERSION:
            raise ValueError(f"cache version {int(z['version'])}, expected {CACHE_VERSION}")
        offsets, bounds = z["offsets"], z["bounds"]
        lines = [Line(str(f), str(i), str(t), offsets[a:b])
                 for f, i, t, a, b in zip(z["form_ids"], z["line_ids"], z["texts"], bounds[:-1], bounds[1:])]
        report = ReadReport(**json.loads(str(z["report"])))
    log.info("loaded %d lines from the cache %s", len(lines), path)
    return lines, report


@dataclass
class StrokeSplits:
    """Training and validation lines, and the statistics of the training lines only."""

    train: list[Line]
    valid: list[Line]
    stats: StrokeStats


def load_splits(source: str, valid_fraction: float = VALID_FRACTION, cache_root: str | None = None,
                max_step: float | None = MAX_STEP_LENGTH) -> StrokeSplits:
    """``load_iamondb`` + ``split_by_form`` + ``StrokeStats.from_offsets`` on the training side, which must
    hold a line (the validation side may be empty: ``valid_fraction`` 0)."""
    lines, _ = load_iamondb(source, cache_root, max_step)
    train, valid = split_by_form(lines, valid_fraction)
    if not train:  # the training statistics need lines
        raise UserError(f"the split by form left no training lines: valid_fraction={valid_fraction:g} held out all "
                        f"{len({line.form_id for line in valid})} forms at {source}; lower valid_fraction or give more forms")
    return StrokeSplits(train, valid, StrokeStats.from_offsets([line.offsets for line in train]))
