"""Hostile texts for ``rnnlab train charlm --data`` and ``rnnlab evaluate RUN --data``: empty, binary and
non-UTF-8 files, special files (a FIFO, /dev/zero and a link to it), folders, broken links, a name below
a file, a sparse file past the text cap of rnnlab/files.py, and an address space too tight for a reader
that reserves its cap up front. Each gets one error line (or, for a training, no run folder left behind)."""

import os

import pytest

from hostile_harness import Case, assert_contract, case_id, names_cap, run_cases
from hostile_inputs import TINY_CHARLM, copy_run, fifo, link, sparse, write
from rnnlab.files import LIMITS

ROOT = os.geteuid() == 0


def _unreadable(folder):
    os.chmod(write(folder / "bad.txt", "hello world\n" * 20), 0)


def _loop(folder):
    link(folder / "bad.txt", folder / "other.txt")
    link(folder / "other.txt", folder / "bad.txt")


# name -> (setup of {case}/bad.txt, the path given as --data, what the case probes)
FILES = {
    "empty": (lambda f: write(f / "bad.txt", ""), "{case}/bad.txt", "an empty file"),
    "nul-bytes": (lambda f: write(f / "bad.txt", "hello\x00world\n" * 50), "{case}/bad.txt", "NUL bytes: binary"),
    "latin-1": (lambda f: write(f / "bad.txt", "caf\u00e9 au lait\n".encode("latin-1") * 50), "{case}/bad.txt",
                "Latin-1, not UTF-8"),
    "utf-16-bom": (lambda f: write(f / "bad.txt", "hello world\n".encode("utf-16") * 50), "{case}/bad.txt",
                   "UTF-16 with a byte-order mark"),
    "fifo": (lambda f: fifo(f / "bad.txt"), "{case}/bad.txt", "a FIFO: opening it blocks until a writer comes"),
    "dev-zero": (None, "/dev/zero", "/dev/zero: a read never ends"),
    "dev-zero-link": (lambda f: link(f / "bad.txt", "/dev/zero"), "{case}/bad.txt", "a link to /dev/zero"),
    "folder": (lambda f: os.mkdir(f / "bad.txt"), "{case}/bad.txt", "a folder"),
    "dangling-link": (lambda f: link(f / "bad.txt", f / "nowhere.txt"), "{case}/bad.txt", "a link to nothing"),
    "link-loop": (_loop, "{case}/bad.txt", "two links to each other (ELOOP)"),
    "no-permission": (_unreadable, "{case}/bad.txt", "mode 000"),
    "file-component": (lambda f: write(f / "file.txt", "hello\n"), "{case}/file.txt/x", "a name below a file"),
    "sparse-over-cap": (lambda f: sparse(f / "bad.txt", LIMITS["text"] + 1, b"hello\n"), "{case}/bad.txt",
                        "a sparse file one byte past the text cap: its size alone must refuse it"),
}
SKIP = {"no-permission": "tests run as root, whom mode 000 does not stop" if ROOT else ""}
# Where the message is the point: a special file must not be reported as missing; the cap must be named.
LACKS = {"fifo": ("does not exist",), "dev-zero": ("does not exist",), "dev-zero-link": ("does not exist",)}


def _with_run(setup):
    def both(folder):
        copy_run("charlm", folder)
        if setup:
            setup(folder)
    return both


def _with_old_run(setup):
    def both(folder):
        copy_run("charlm", folder, "out")
        if setup:
            setup(folder)
    return both


def _cases():
    cases = []
    for name, (setup, data, why) in FILES.items():
        special = {"has": (data,) if name != "dev-zero" else (), "lacks": LACKS.get(name, ()),
                   "skip": SKIP.get(name, ""), "check": names_cap("text") if name == "sparse-over-cap" else None,
                   "why": why}
        train = ["train", "charlm", "--data", data, "--out", "{case}/out", "--max-steps", "2", "--set", *TINY_CHARLM]
        cases.append(Case(f"train-{name}", train, setup, keep=(data,) if data != "/dev/zero" else (), absent=("out",),
                          **special))
        cases.append(Case(f"evaluate-{name}", ["evaluate", "{case}/run", "--data", data], _with_run(setup),
                          keep=("run",), **special))
    for name in ("fifo", "dev-zero-link", "utf-16-bom"):  # --force over a run: the old run must survive whole
        setup, data, why = FILES[name]
        cases.append(Case(f"force-{name}", ["train", "charlm", "--data", data, "--out", "{case}/out", "--force",
                                            "--max-steps", "2", "--set", *TINY_CHARLM],
                          _with_old_run(setup), keep=("out",), lacks=LACKS.get(name, ()), why=f"--force, {why}"))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return run_cases(CASES, tmp_path_factory.mktemp("text"))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_hostile_text_gets_one_error_line(case, outcomes):
    assert_contract(case, outcomes[case.id])


# A reader that reserves its cap up front (f.read(cap + 1): 4 GiB for a text) fails under `ulimit -v` or
# strict overcommit however small the file. 2.5 GiB is far more than torch and a tiny training use.
TIGHT = [Case("train-small-text-in-2.5-GiB", ["train", "charlm", "--data", "{case}/small.txt", "--out", "{case}/out",
                                                "--max-steps", "2", "--set", *TINY_CHARLM],
              lambda f: write(f / "small.txt", "hello world, hello rnn.\n" * 200), expect=0, seconds=20,
              why="a 5 kB text must train with a 2.5 GiB address space (RLIMIT_AS), as under ulimit -v")]


@pytest.fixture(scope="module")
def tight_outcomes(tmp_path_factory):
    return run_cases(TIGHT, tmp_path_factory.mktemp("text-tight"), address_space=5 << 29)


@pytest.mark.parametrize("case", TIGHT, ids=case_id)
def test_a_small_text_needs_no_more_memory_than_its_size(case, tight_outcomes):
    assert_contract(case, tight_outcomes[case.id])
