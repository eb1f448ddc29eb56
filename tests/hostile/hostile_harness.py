"""The contract every bad input to ``rnnlab`` must keep, and a harness that checks it for many cases at once.

The contract: exit status 2, exactly one line on stderr starting ``rnnlab: error: ``, the last one (the
progress lines a command logs as it goes, such as "data ...: 4,140 characters", may precede it; a warning,
a traceback or a second error may not), an answer within a time bound (no hang), within bounded memory (an input of a few kB never
needs gigabytes), and no byte of an existing run folder or output file changed.

One child process runs a whole module's cases (importing torch takes ~2 s: never one process per case)::

    parent (pytest)                          child (python hostile_child.py SPEC RESULTS LIMIT)
      case.setup(case folder) for each case    RLIMIT_AS = LIMIT: an allocation fails instead of swapping
      write SPEC (argv, env, paths to keep)    for each case, in its folder, with RNNLAB_DATA there too:
      start the child, read RESULTS   <------    snapshot (sha256) -> rnnlab.cli.main(argv) -> snapshot
      a child that died mid-case: record it      stdout / stderr / logging captured, alarm -> "timeout",
        and start another for the rest          peak RSS of the case alone, one JSON line per result

A module lists its ``CASES``, runs them once in a module fixture (:func:`run_cases`) and has one
parametrized test per case (:func:`assert_contract`), which prints the case, its argv and what came out.
"""

from dataclasses import dataclass, field
import json
import os
import pathlib
import subprocess
import sys
import time

from hostile_child import WATCHDOG_S

# The child's RLIMIT_AS: importing torch maps ~1 GiB and a tiny training little more, but read_bytes reserves a
# buffer as large as the cap of its kind (4 GiB for a text) however small the file; test_hostile_text's tight case
# checks that, and every other case has room for it.
ADDRESS_SPACE = 6 << 30
CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostile_child.py")
CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0",
             "RNNLAB_DATA_MIRROR": "http://127.0.0.1:9/"}  # port 9 (discard): no case reaches the network


@dataclass
class Case:
    """One hostile input. ``{case}`` in ``argv``, ``env``, ``keep``, ``absent`` and ``has`` is the case's own
    folder, made for it (and its cwd and its RNNLAB_DATA cache, ``{case}/cache``, unless ``env`` says)."""

    id: str                     # unique in a module, usable as a file name
    argv: list
    setup: object = None        # setup(case_folder: pathlib.Path): makes the hostile files
    keep: tuple = ()            # paths whose every byte (every file below a folder) must be unchanged after
    absent: tuple = ()          # paths that must not exist after (a run folder a failed training made)
    expect: object = 2          # 2: the contract above; 0: it must work (warnings allowed, no error line);
                                # (0, 2): either, each judged as such
    has: tuple = ()             # text the error line must hold, where the message is the point
    lacks: tuple = ()           # text it must not hold (a FIFO "does not exist")
    max_chars: int = 0          # the error line's longest length (0: any)
    seconds: float = 5.0        # the time bound; the alarm rings a little after it
    grow_mb: int = 400          # the most the child's resident memory may grow during the case
    oom_ok: bool = False        # whether "out of memory" is a fair answer (a new model asked to be huge)
    env: dict = field(default_factory=dict)
    skip: str = ""              # why the case cannot run here
    check: object = None        # check(result, case_folder) -> a problem (str) or None, after the rest
    why: str = ""               # what the case probes, or why it expects what it does

    def __repr__(self) -> str:
        return self.id


def case_id(case: Case) -> str:
    return case.id


def fill(text: str, folder) -> str:
    return str(text).replace("{case}", str(folder))


def _path(path: str, folder) -> str:
    """``path`` with ``{case}`` filled in, under the case's folder unless absolute."""
    filled = fill(path, folder)
    return filled if os.path.isabs(filled) else os.path.join(str(folder), filled)


# ------------------------------------------------------------------------------------------- parent


def run_cases(cases: list, folder, address_space: int = ADDRESS_SPACE, env: dict | None = None) -> dict:
    """Set up and run ``cases`` (skipped ones aside) in one child; ``{id: result}``. ``folder``: a tmp dir;
    ``env``: variables for every case (a case's own ``env`` goes over them)."""
    assert len({c.id for c in cases}) == len(cases), "case ids must be unique"
    specs = []
    for case in cases:
        if case.skip:
            continue
        where = os.path.join(str(folder), case.id)
        os.makedirs(where)
        if case.setup:
            case.setup(pathlib.Path(where))
        variables = {"RNNLAB_DATA": os.path.join(where, "cache"), **(env or {}),
                     **{k: fill(v, where) for k, v in case.env.items()}}
        specs.append({"id": case.id, "argv": [fill(a, where) for a in case.argv], "cwd": where, "env": variables,
                      "keep": [_path(p, where) for p in case.keep],
                      "alarm": case.seconds + 3.0})
    results = {}
    while len(results) < len(specs):
        results.update(_run_child([s for s in specs if s["id"] not in results], str(folder), address_space))
    results.update({c.id: None for c in cases if c.skip})
    if os.environ.get("HOSTILE_RESULTS"):  # a JSON file per module, for a report of every case
        name = os.path.basename(str(folder).rstrip("/"))
        with open(os.path.join(os.environ["HOSTILE_RESULTS"], f"{name}.json"), "w") as f:
            json.dump({c.id: {"argv": [fill(a, os.path.join(str(folder), c.id)) for a in c.argv],
                              "result": results.get(c.id)} for c in cases}, f, indent=1)
    return results


def _run_child(specs: list, folder: str, address_space: int) -> dict:
    """Run ``specs`` in one child until it ends; a case it died in is recorded as "crashed" (with the
    watchdog's stack dump when it hung in C)."""
    n = len(os.listdir(folder))
    spec_path, results_path, log_path = (os.path.join(folder, f".child-{n}.{ext}") for ext in ("spec", "jsonl", "log"))
    with open(spec_path, "w") as f:
        json.dump(specs, f)
    env = {**os.environ, **CHILD_ENV}
    with open(log_path, "wb") as log:
        child = subprocess.Popen([sys.executable, CHILD, spec_path, results_path,
                                  str(address_space)], stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        limit = sum(s["alarm"] + WATCHDOG_S for s in specs) + 60
        try:
            child.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    results, started = {}, None
    if os.path.exists(results_path):
        with open(results_path) as f:
            for line in f:
                record = json.loads(line)
                if "started" in record:
                    started = record
                else:
                    results[record["id"]] = record
    if started and started["started"] not in results:  # the child died in this case
        with open(log_path, errors="replace") as f:
            tail = f.read()[-6000:]
        hung = "Timeout (" in tail  # faulthandler's watchdog
        spec = next(s for s in specs if s["id"] == started["started"])
        results[spec["id"]] = {
            "id": spec["id"], "argv": spec["argv"], "cwd": spec["cwd"], "outcome": "hung" if hung else "crashed",
            "rc": None, "seconds": round(time.time() - started["at"], 2), "stdout": "", "stderr": "",
            "stderr_lines": [], "line_lengths": [], "changed": [], "rss_grew_mb": None, "rss_peak_mb": None,
            "traceback": f"the child {'hung where no signal reaches and its watchdog ended it' if hung else 'died'} "
                         f"(exit status {child.returncode}); its log:\n{tail}"}
    elif not results and specs:  # died before the first case: nothing to retry
        with open(log_path, errors="replace") as f:
            raise RuntimeError(f"the hostile child failed to start:\n{f.read()[-4000:]}")
    return results


def assert_contract(case: Case, result: dict | None) -> None:
    """Fail with the case, its argv and everything that came out unless ``result`` keeps the contract."""
    import pytest

    if case.skip:
        pytest.skip(case.skip)
    assert result is not None, f"{case.id}: no result (the harness lost it)"
    problems = _problems(case, result)
    if problems:
        pytest.fail(describe(case, result, problems), pytrace=False)


def _allowed(case: Case) -> tuple:
    return case.expect if isinstance(case.expect, tuple) else (case.expect,)


def _problems(case: Case, r: dict) -> list:
    if r["outcome"] in ("timeout", "hung"):
        return [f"no answer within {case.seconds + 3:g} s: it hangs ({r['outcome']})"]
    if r["outcome"] in ("exception", "crashed"):
        return [f"{r['outcome']}: {(r['traceback'] or '').strip().splitlines()[-1:]}"]
    problems = []
    lines = r["stderr_lines"]
    allowed = _allowed(case)
    if r["rc"] not in allowed:
        problems.append(f"exit status {r['rc']}, expected {' or '.join(map(str, allowed))}")
    if (r["rc"] == 2) if r["rc"] in allowed else allowed == (2,):
        errors = [line for line in lines if line.startswith("rnnlab: error: ")]
        if len(errors) != 1 or lines[-1] != errors[0]:
            problems.append(f"stderr has {len(errors)} error line(s) in {len(lines)}; expected exactly one starting "
                            f"'rnnlab: error: ', the last")
        noise = [line for line in lines if "Traceback" in line or "Warning:" in line or "warning" in line.lower()]
        if noise:
            problems.append(f"stderr holds a warning or a traceback: {noise[0][:120]!r}")
        line = errors[0] if len(errors) == 1 else "\n".join(lines)
        problems += [f"the error does not say {fill(t, r['cwd'])!r}" for t in case.has if fill(t, r["cwd"]) not in line]
        problems += [f"the error says {t!r}" for t in case.lacks if t in line]
        if case.max_chars and r["line_lengths"] and max(r["line_lengths"]) > case.max_chars:
            problems.append(f"the error line is {max(r['line_lengths']):,} characters, over {case.max_chars}")
        if not case.oom_ok and "out of memory" in line:
            problems.append("'out of memory' for an input of a few kB: it was read or allocated without a bound")
    elif any(line.startswith(("rnnlab: error", "Traceback")) for line in lines):
        problems.append("an error or a traceback on stderr of a case that must work")
    if r["seconds"] > case.seconds:
        problems.append(f"took {r['seconds']:.1f} s, over the {case.seconds:g} s bound")
    if r["rss_grew_mb"] is not None and r["rss_grew_mb"] > case.grow_mb:
        problems.append(f"resident memory grew by {r['rss_grew_mb']:,} MiB, over {case.grow_mb} MiB")
    problems += [f"changed: {c}" for c in r["changed"]]
    problems += [f"exists afterwards: {p}" for p in case.absent if os.path.lexists(_path(p, r["cwd"]))]
    if case.check and not problems:
        try:
            extra = case.check(r, r["cwd"])
        except Exception as e:  # noqa: BLE001 -- a check that cannot read what the case left is a finding too
            extra = f"the case's check failed: {type(e).__name__}: {e}"
        if extra:
            problems.append(extra)
    return problems


def _short(text: str, keep: int = 120) -> str:
    return text if len(text) <= keep else f"{text[:keep]}... ({len(text):,} characters)"


def describe(case: Case, r: dict, problems: list) -> str:
    """What a failing case did, for the reader of the failure and for the report of failures."""
    shown = [f"    {_short(line, 300)}" for line in r["stderr_lines"][:12]]
    trace = r["traceback"].strip().splitlines()[-8:] if r["traceback"] else []
    return "\n".join([
        f"case {case.id}: rnnlab {' '.join(_short(a) for a in r.get('argv', case.argv))}",
        *([f"  why: {case.why}"] if case.why else []),
        f"  expected: exit {' or '.join(map(str, _allowed(case)))}" + (" (2: one 'rnnlab: error:' line)" if 2 in
                                                                        _allowed(case) else ", no error line"),
        f"  got: {r['outcome']}, exit {r['rc']}, {r['seconds']:.2f} s, RSS peak {r['rss_peak_mb']} MiB "
        f"(grew {r['rss_grew_mb']} MiB), stderr {len(r['stderr_lines'])} line(s):",
        *shown,
        *([f"  stdout: {r['stdout'][-300:]!r}"] if r["stdout"].strip() else []),
        *(["  traceback (last lines):", *trace] if trace else []),
        "  problems: " + "; ".join(problems)])


def names_cap(kind: str):
    """A check that the error line names the cap of ``kind`` in MiB (``4,096`` or ``4096``)."""
    def check(result, folder):
        from rnnlab.files import LIMITS

        mib = LIMITS[kind] >> 20
        line = "".join(result["stderr_lines"])
        return None if f"{mib:,}" in line or str(mib) in line else f"the error does not name the {mib:,} MiB cap"
    return check
