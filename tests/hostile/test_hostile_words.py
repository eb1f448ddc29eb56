"""Hostile word corpora for ``rnnlab train wordlm --data FOLDER`` and ``rnnlab evaluate RUN --data FOLDER``:
missing splits, a split that is a FIFO, a folder or a link to /dev/zero (reported as what it is, not as
missing), non-UTF-8, empty, binary or sparse past the text cap, and a --data that is no folder."""

import os

import pytest

from hostile_harness import Case, assert_contract, case_id, names_cap, run_cases
from hostile_inputs import TINY_WORDLM, WORDS, copy_run, fifo, link, sparse, write
from rnnlab.files import LIMITS

SPLITS = ("train", "valid", "test")


def corpus(folder, skip=(), names="{}.txt"):
    for split in SPLITS:
        if split not in skip:
            write(folder / "corpus" / names.format(split), WORDS)


SPLIT_DAMAGE = {  # name -> (damage of a split file, why, is it a special file)
    "fifo": (fifo, "a FIFO", True),
    "folder": (lambda p: (os.remove(p), os.mkdir(p)), "a folder", True),
    "dev-zero-link": (lambda p: link(p, "/dev/zero"), "a link to /dev/zero", True),
    "dangling-link": (lambda p: link(p, p + ".gone"), "a link to nothing", False),
    "latin-1": (lambda p: write(p, "caf\u00e9 au lait\n".encode("latin-1") * 20), "Latin-1, not UTF-8", False),
    "empty": (lambda p: write(p, ""), "no bytes", False),
    "blank": (lambda p: write(p, "\n\n  \n"), "blank lines only", False),
    "nul-bytes": (lambda p: write(p, "the cat\x00sat\n" * 20), "NUL bytes", False),
    "utf-16": (lambda p: write(p, WORDS.encode("utf-16")), "UTF-16", False),
    "over-cap": (lambda p: sparse(p, LIMITS["text"] + 1, b"the cat\n"), "a sparse file past the text cap", False),
}
TRAIN = ["train", "wordlm", "--data", "{case}/corpus", "--out", "{case}/out", "--max-steps", "2", "--set", *TINY_WORDLM]


def _evaluate(split):
    return ["evaluate", "{case}/run", "--data", "{case}/corpus", "--split", split]


def _damaged(split, damage, run=False, names="{}.txt"):
    def setup(folder):
        corpus(folder, names=names)
        damage(str(folder / "corpus" / names.format(split)))
        if run:
            copy_run("wordlm", folder)
    return setup


def _layout(skip=(), names="{}.txt", extra=None, run=False):
    def setup(folder):
        corpus(folder, skip, names)
        os.makedirs(folder / "corpus", exist_ok=True)
        if extra:
            extra(folder)
        if run:
            copy_run("wordlm", folder)
    return setup


def _cases():
    cases = []
    for name, (damage, why, special) in SPLIT_DAMAGE.items():
        extra = {"why": why, "has": ("{case}/corpus",), "lacks": ("lacks",) if special else (),
                 "check": names_cap("text") if name == "over-cap" else None}
        for split in ("train", "valid"):
            cases.append(Case(f"train-{split}-{name}", TRAIN, _damaged(split, damage), absent=("out",), **extra))
        cases.append(Case(f"evaluate-test-{name}", _evaluate("test"), _damaged("test", damage, run=True),
                          keep=("run",), **extra))
        cases.append(Case(f"train-ptb-train-{name}", TRAIN, _damaged("train", damage, names="ptb.{}.txt"),
                          absent=("out",), **extra))
    layouts = {
        "missing-valid": (_layout(skip=("valid",)), "a split missing"),
        "only-train": (_layout(skip=("valid", "test")), "two splits missing"),
        "empty-folder": (_layout(skip=SPLITS), "no split"),
        "mixed-layouts": (_layout(skip=("train",), extra=lambda f: write(f / "corpus" / "ptb.train.txt", WORDS)),
                          "ptb.train.txt beside valid.txt and test.txt"),
        "every-split-fifo": (_layout(skip=SPLITS, extra=lambda f: [fifo(f / "corpus" / f"{s}.txt") for s in SPLITS]),
                             "three FIFOs"),
    }
    for name, (setup, why) in layouts.items():
        cases.append(Case(f"train-{name}", TRAIN, setup, absent=("out",), why=why))
    cases.append(Case("evaluate-missing-test", _evaluate("test"), _layout(skip=("test",), run=True), keep=("run",)))
    cases.append(Case("evaluate-unknown-words", _evaluate("test"), _layout(run=True, extra=lambda f: write(
        f / "corpus" / "test.txt", "zebra quokka axolotl\n")), keep=("run",), why="words the run never saw, no <unk>"))
    not_folders = {"fifo": lambda f: fifo(f / "corpus"), "file": lambda f: write(f / "corpus", WORDS),
                   "dev-zero-link": lambda f: link(f / "corpus", "/dev/zero")}
    for name, make in not_folders.items():
        cases.append(Case(f"train-data-{name}", TRAIN, make, absent=("out",), has=("{case}/corpus",),
                          lacks=("does not exist",)))
        cases.append(Case(f"evaluate-data-{name}", _evaluate("valid"), lambda f, make=make: (make(f), copy_run(
            "wordlm", f)), keep=("run",), has=("{case}/corpus",), lacks=("does not exist",)))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return run_cases(CASES, tmp_path_factory.mktemp("words"))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_hostile_word_corpus_gets_one_error_line(case, outcomes):
    assert_contract(case, outcomes[case.id])
