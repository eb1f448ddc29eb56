"""Writing files so that a reader never sees half of one: every file rnnlab writes (checkpoints, run files,
drawings, plots, the IAM-OnDB cache, downloads) goes through :func:`atomic_write`.

The content is written to a temporary name in the destination's folder, flushed to disk, and moved over
the destination with ``os.replace``, which is atomic: a process killed at any moment leaves either the old
file or the new one, never a mix. A killed process can leave its temporary file behind (``.NAME.PID.tmp``);
:func:`remove_stale_temps` clears those of dead processes.
"""

import os
import re

TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.tmp$")  # .NAME.PID.tmp, as temp_path() names them


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
