"""Files in and out. Every file rnnlab reads goes through :func:`read_bytes` (or :func:`read_json`): it must
be a regular file (a FIFO would block forever, ``/dev/zero`` never end) no larger than the cap of its kind
(``LIMITS``), and JSON is read by one parser that refuses NaN, infinities, integers past Python's
4,300-digit limit and absurd nesting, each as a one-line ``UserError`` naming the file.

Every file rnnlab writes (checkpoints, run files, drawings, plots, the IAM-OnDB cache, downloads) goes
through :func:`atomic_write`, so a reader never sees half of one.

The content is written to a temporary name in the destination's folder, flushed to disk, and moved over
the destination with ``os.replace``, which is atomic: a process killed at any moment leaves either the old
file or the new one, never a mix. A killed process can leave its temporary file behind (``.NAME.PID.tmp``);
:func:`remove_stale_temps` clears those of dead processes.
"""

import json
import math
import os
import re
import stat

from .errors import UserError

MiB = 1 << 20
# The most rnnlab reads of each kind of file, in bytes: far above any real one, far below what would exhaust
# memory (a file over its cap is an error that names the cap).
LIMITS = {
    "config": 1 * MiB,        # a TOML config or a run's config.json: a few kB
    "style": 16 * MiB,        # strokes and their text: one IAM-OnDB line is about 30 kB as JSON
    "vocabulary": 256 * MiB,  # a run's vocab.json: WikiText-103's 267k words take 3 MB
    "metrics": 1024 * MiB,    # a run's metrics.jsonl: 2,000 lines for 100k steps at the default interval
    "stroke file": 16 * MiB,  # one IAM-OnDB line XML (20 kB) or transcription (1 kB)
    "text": 4096 * MiB,       # a corpus (a text, a word split) or a JSONL file: WikiText-103's train split is 540 MB
    "checkpoint": 1 << 40,    # weights or a training state: any size a disk holds (read by safetensors / torch)
    "archive": 1 << 40,       # the IAM-OnDB .tar.xz (0.2 GB), streamed
}

TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.tmp$")  # .NAME.PID.tmp, as temp_path() names them


def _size(n: int) -> str:
    return f"{n / MiB:,.1f} MiB" if n >= MiB else f"{n:,} bytes"


def check_file(path: str, kind: str, what: str | None = None, fix: str = "give a regular file") -> int:
    """The size of ``path``, which must be an existing regular file (links to one are followed) within the cap
    of ``kind``; otherwise a UserError "``what`` ``path`` ...; ``fix``" (``what``: "<kind> file")."""
    what = what or f"{kind} file"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist; {fix}") from None
    except OSError as e:  # a dangling or looping link, a name too long, a component that is a file
        raise UserError(f"{what} {path} cannot be opened ({e.strerror}); {fix}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"{what} {path} is a folder; {fix}")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{what} {path} is not a regular file (a FIFO, a device or a socket, which could block or "
                        f"never end); {fix}")
    if info.st_size > LIMITS[kind]:
        raise UserError(f"{what} {path} is {_size(info.st_size)}, over the {_size(LIMITS[kind])} rnnlab reads as a "
                        f"{kind}; {fix}")
    return info.st_size


def read_bytes(path: str, kind: str, what: str | None = None, fix: str = "give a regular file") -> bytes:
    """The bytes of ``path``, checked by :func:`check_file` (and never more than the cap, should it grow)."""
    size = check_file(path, kind, what, fix)
    try:
        with open(path, "rb") as f:
            data = f.read(size + 1)  # what stat saw, +1 to see growth: read(cap) would reserve the whole cap
            if len(data) > size:  # it grew since stat: read on, to the cap
                data += f.read(LIMITS[kind] + 1 - len(data))
    except OSError as e:
        raise UserError(f"{what or kind + ' file'} {path} cannot be read ({e.strerror}); check its permissions") \
            from None
    if len(data) > LIMITS[kind]:
        raise UserError(f"{what or kind + ' file'} {path} grew past the {_size(LIMITS[kind])} rnnlab reads as a "
                        f"{kind} while it was read; {fix}")
    return data


def read_utf8(path: str, what: str, fix: str, converted: str) -> str:
    """The UTF-8 text of ``path`` (a text file of ``what``: "pairs file"), a byte-order mark allowed, through
    :func:`read_bytes` (kind "text"); a binary or non-UTF-8 file is a UserError naming the line, with
    ``fix``, or for another encoding the iconv command that writes ``converted``."""
    raw = read_bytes(path, "text", what, fix)
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise UserError(f"{what} {path} looks binary (a NUL byte on line {line}); {fix}")
    try:
        return raw.decode("utf-8-sig")  # -sig: a byte-order mark, as some editors write, is not an error
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise UserError(f"{what} {path} is not UTF-8 (byte 0x{raw[e.start]:02x} on line {line}); "
                        f"convert it first, for example: iconv -f latin1 -t utf-8 {path} > {converted}") from None


class JSONError(UserError):
    """Text that is not the JSON rnnlab reads; ``reason`` says why in a few words."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where} is not valid JSON ({reason})")
        self.reason = reason


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond a float's range")
    return value


def parse_json(text: str, where: str):
    """``text`` as JSON, refusing NaN, Infinity, numbers beyond a float, integers past Python's 4,300-digit
    limit and nesting too deep to read: a :class:`JSONError` naming ``where`` (a file, or a file and line)."""
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise JSONError(where, "nested too deeply") from None
    except json.JSONDecodeError as e:
        raise JSONError(where, f"{e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:  # a constant or float refused above, or an integer of more than 4,300 digits
        reason = "an integer of more than 4,300 digits" if "4300" in str(e) else str(e)
        raise JSONError(where, reason) from None


def read_json(path: str, kind: str, what: str | None = None, fix: str = "give a regular file"):
    """A JSON file of ``kind``: :func:`read_bytes` and :func:`parse_json` (UTF-8, a byte-order mark allowed)."""
    data = read_bytes(path, kind, what, fix)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise JSONError(path, f"not UTF-8: byte 0x{data[e.start]:02x} at offset {e.start}") from None
    return parse_json(text, path)


def temp_path(path: str) -> str:
    """The temporary name ``path`` is written under: same folder (so the rename stays on one file system)."""
    return os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.{os.getpid()}{TEMP_SUFFIX}")


def atomic_write(path: str, write) -> None:
    """Call ``write(tmp_path)``, flush it to disk, then rename over ``path``. If ``write`` raises, ``path`` is
    untouched and the temporary file is removed; an ``OSError`` names ``path``, not the temporary name."""
    tmp = temp_path(path)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # some writers create private files; outputs are shared like any other file
        os.replace(tmp, path)
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str, text: str) -> None:
    """``text`` to ``path`` as UTF-8, atomically."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)


def write_bytes(path: str, data: bytes) -> None:
    """``data`` to ``path``, atomically."""
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (a process of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: str) -> list[str]:
    """Delete the temporary files in ``folder`` left by processes that no longer run; return their names."""
    removed = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        match = _TEMP_NAME.match(name)
        if match and not pid_alive(int(match.group(1))):
            os.remove(os.path.join(folder, name))
            removed.append(name)
    return removed
