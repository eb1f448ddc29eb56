"""The child process of hostile_harness.run_cases: ``python hostile_child.py SPEC RESULTS LIMIT`` sets the
address-space limit, imports torch and rnnlab once, then runs each case of SPEC in-process (``rnnlab.cli.main``
with its own captured stdout, stderr and logging, cwd and environment, an alarm, a peak-RSS reset and a
snapshot of the paths to keep before and after) and appends one JSON line per result to RESULTS.
"""

import contextlib
import hashlib
import io
import json
import os
import stat
import sys
import tempfile
import time
import traceback

WATCHDOG_S = 15   # past a case's alarm: a child stuck in C (a Rust open of a FIFO) dumps its stack and exits
MAX_LINE = 2000   # characters of each captured line kept in a result (its length is kept whole)


class CaseTimeout(BaseException):
    """The per-case alarm: a BaseException, so rnnlab's ``except Exception`` cannot swallow it."""


class _Capture(io.StringIO):
    def close(self):  # cli.main closes stderr on a broken pipe; the case's text must survive it
        pass


def _fingerprint(path: str) -> str:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return f"link -> {os.readlink(path)}"
    if stat.S_ISDIR(info.st_mode):
        return "folder"
    if not stat.S_ISREG(info.st_mode):
        return f"special file {stat.filemode(info.st_mode)}"
    if info.st_size > 64 << 20:  # a sparse hostile file: not read whole
        return f"{info.st_size} bytes, mtime {info.st_mtime_ns}"
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def snapshot(paths: list) -> dict:
    """``{path: sha256 or kind}`` of every entry at or below ``paths``, links not followed."""
    found = {}
    for top in paths:
        if not os.path.lexists(top):
            found[top] = "absent"
            continue
        found[top] = _fingerprint(top)
        if os.path.isdir(top) and not os.path.islink(top):
            for dirpath, dirs, names in os.walk(top):
                for name in dirs + names:
                    found[os.path.join(dirpath, name)] = _fingerprint(os.path.join(dirpath, name))
    return found


def _memory() -> tuple:
    """(resident MiB now, peak MiB since the last reset)."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) // 1024
    return values["VmRSS"], values["VmHWM"]


def _reset_peak() -> None:
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux 4.0+)


def _run_one(spec: dict, main) -> dict:
    import logging
    import signal
    import warnings

    root = logging.getLogger()
    for handler in root.handlers[:]:  # cli.main's basicConfig must bind this case's stderr, not the first's
        root.removeHandler(handler)
    saved_env, cwd = dict(os.environ), os.getcwd()
    os.environ.update(spec["env"])
    os.chdir(spec["cwd"])
    before = snapshot(spec["keep"])
    out, err = _Capture(), _Capture()
    fd_err = tempfile.TemporaryFile()  # what C code writes to fd 2 (Python's sys.stderr is captured above)
    saved_fd = os.dup(2)

    def ring(signum, frame):
        raise CaseTimeout()

    signal.signal(signal.SIGALRM, ring)
    rc, outcome, trace = None, "returned", ""
    rss_start, _ = _memory()
    _reset_peak()
    start = time.perf_counter()
    try:
        os.dup2(fd_err.fileno(), 2)
        signal.setitimer(signal.ITIMER_REAL, spec["alarm"])
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("default")  # every case shows its own warnings once, as a fresh process would
            try:
                rc = main(spec["argv"])
            except SystemExit as e:  # argparse
                rc, outcome = (e.code if isinstance(e.code, int) else 2), "exit"
    except CaseTimeout:
        outcome, trace = "timeout", traceback.format_exc()
    except BaseException:  # noqa: BLE001 -- anything escaping main is the finding
        outcome, trace = "exception", traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        seconds = time.perf_counter() - start
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
    _, rss_peak = _memory()
    fd_err.seek(0)
    stderr = err.getvalue() + fd_err.read().decode(errors="replace")
    fd_err.close()
    after = snapshot(spec["keep"])
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(saved_env)
    lines = stderr.rstrip("\n").split("\n") if stderr.strip() else []
    changed = [f"{p}: {before.get(p, 'absent')} -> {after.get(p, 'absent')}"
               for p in sorted(set(before) | set(after)) if before.get(p, "absent") != after.get(p, "absent")]
    return {"id": spec["id"], "argv": spec["argv"], "cwd": spec["cwd"], "outcome": outcome, "rc": rc,
            "seconds": round(seconds, 3), "stdout": out.getvalue()[-4000:], "stderr": stderr[:MAX_LINE * 4],
            "stderr_lines": [line[:MAX_LINE] for line in lines[:50]],
            "line_lengths": [len(line) for line in lines[:50]],
            "changed": changed, "rss_peak_mb": rss_peak, "rss_grew_mb": max(0, rss_peak - rss_start),
            "traceback": trace}


def _child(spec_path: str, results_path: str, address_space: int) -> None:
    import faulthandler
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    log = os.fdopen(os.dup(2), "w")  # the child's log: fd 2 itself is each case's capture while it runs
    faulthandler.enable(file=log)
    import torch

    torch.set_num_threads(1)
    from rnnlab.cli import main

    with open(spec_path) as f:
        specs = json.load(f)
    with open(results_path, "a") as results:
        for spec in specs:
            results.write(json.dumps({"started": spec["id"], "at": time.time()}) + "\n")
            results.flush()
            faulthandler.dump_traceback_later(spec["alarm"] + WATCHDOG_S, exit=True, file=log)
            result = _run_one(spec, main)
            faulthandler.cancel_dump_traceback_later()
            results.write(json.dumps(result) + "\n")
            results.flush()


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
