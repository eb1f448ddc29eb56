"""Hostile JSONL files for ``rnnlab train classify --data`` and ``rnnlab evaluate RUN --data``: labels of the
wrong type (decided: a label is a string or an integer, 1.0 is the integer 1; a boolean, a NaN or a
non-integral float is an error naming the file and the line), numbers past 4,300 digits or beyond a float,
nesting 100,000 deep, special files, and a 200,000-step sequence beside short ones (a warning and a bounded
step time without max_length; an error with it)."""

import json
import os

import pytest

from hostile_harness import Case, assert_contract, case_id, names_cap, run_cases
from hostile_inputs import CLASSIFY_LINES, TINY_CLASSIFY, copy_run, fifo, huge_int, link, nested, sparse, write
from rnnlab.files import LIMITS

GOOD = "".join(json.dumps(line) + "\n" for line in CLASSIFY_LINES)  # tokens a, b; classes "1", "2"
BAD_LINE = len(CLASSIFY_LINES) + 1
LINES = {  # name -> (the line after the good ones, why); each is an error naming the file and the line
    "label-true": ('{"tokens": ["a"], "label": true}', "a boolean label (was the class 'True')"),
    "label-false": ('{"tokens": ["a"], "label": false}', "a boolean label"),
    "label-nan": ('{"tokens": ["a"], "label": NaN}', "a NaN label (was the class 'nan')"),
    "label-infinity": ('{"tokens": ["a"], "label": Infinity}', "an infinite label"),
    "label-1e400": ('{"tokens": ["a"], "label": 1e400}', "1e400: infinite as a float"),
    "label-1.5": ('{"tokens": ["a"], "label": 1.5}', "a non-integral float label"),
    "label-5000-digits": ('{"tokens": ["a"], "label": %s}' % huge_int(), "an integer past 4,300 digits"),
    "label-list": ('{"tokens": ["a"], "label": [1]}', "a list for a label"),
    "label-object": ('{"tokens": ["a"], "label": {"class": 1}}', "an object for a label"),
    "label-null": ('{"tokens": ["a"], "label": null}', "no label"),
    "labels-true": ('{"tokens": ["a", "b"], "labels": [true, "1"]}', "a boolean among per-step labels"),
    "token-nested": ('{"tokens": [["a"]], "label": "1"}', "a list for a token"),
    "token-5000-digits": ('{"tokens": [%s], "label": "1"}' % huge_int(), "a 5,000-digit token"),
    "token-true": ('{"tokens": [true], "label": "1"}', "a boolean token: read as 'True' like the labels were"),
    "feature-5000-digits": ('{"features": [[%s]], "label": "1"}' % huge_int(), "a 5,000-digit feature"),
    "feature-1e400": ('{"features": [[1e400]], "label": "1"}', "an infinite feature"),
    "feature-true": ('{"features": [[true]], "label": "1"}', "a boolean feature"),
    "target-true": ('{"features": [[1.0]], "target": true}', "a boolean target"),
    "deep-nesting": (nested(), "[[[...]]] 100,000 deep"),
    "deep-label": ('{"tokens": ["a"], "label": %s}' % nested(50_000), "a label 50,000 deep"),
    "deep-object": ('{"a": ' * 50_000 + "1" + "}" * 50_000, "objects 50,000 deep"),
    "string-line": ('"tokens"', "a string, not an object"),
}
FILES = {  # name -> (setup of {case}/data.jsonl, the path given, why)
    "empty": (lambda f: write(f / "data.jsonl", ""), "{case}/data.jsonl", "no bytes"),
    "blank-lines": (lambda f: write(f / "data.jsonl", "\n  \n\n"), "{case}/data.jsonl", "only blank lines"),
    "utf-16": (lambda f: write(f / "data.jsonl", GOOD.encode("utf-16")), "{case}/data.jsonl", "UTF-16"),
    "fifo": (lambda f: fifo(f / "data.jsonl"), "{case}/data.jsonl", "a FIFO (was: does not exist)"),
    "dev-zero": (None, "/dev/zero", "/dev/zero"),
    "dev-zero-link": (lambda f: link(f / "data.jsonl", "/dev/zero"), "{case}/data.jsonl", "a link to /dev/zero"),
    "folder": (lambda f: os.mkdir(f / "data.jsonl"), "{case}/data.jsonl", "a folder"),
    "sparse-over-cap": (lambda f: sparse(f / "data.jsonl", LIMITS["text"] + 1, GOOD.encode()), "{case}/data.jsonl",
                        "a sparse file past the cap"),
}
TRAIN = ["train", "classify", "--data", "{case}/data.jsonl", "--out", "{case}/out", "--max-steps", "2", "--set",
         *TINY_CLASSIFY]
EVALUATE = ["evaluate", "{case}/run", "--data", "{case}/data.jsonl"]
ON_EVALUATE = ("label-true", "label-nan", "label-1.5", "label-5000-digits", "deep-nesting", "token-true")
LONG = [{"tokens": ["a"] * 200_000, "label": "1"}]


def _file(text, run=False):
    def setup(folder):
        write(folder / "data.jsonl", text)
        if run:
            copy_run("classify", folder)
    return setup


def _special(setup, run=False):
    def both(folder):
        if setup:
            setup(folder)
        if run:
            copy_run("classify", folder)
    return both


def _classes(*expected):
    def check(result, folder):
        labels = json.load(open(os.path.join(folder, "out", "vocab.json")))["labels"]
        return None if labels == list(expected) else f"the run's classes are {labels}, expected {list(expected)}"
    return check


def _warns_of_length(result, folder):
    text = "\n".join(result["stderr_lines"])
    return None if "200,000" in text or "200000" in text else "no warning names the 200,000-step sequence"


def _cases():
    cases = []
    for name, (line, why) in LINES.items():
        text = GOOD + line + "\n"
        cases.append(Case(f"train-{name}", TRAIN, _file(text), absent=("out",), has=(f"line {BAD_LINE}",), why=why))
        if name in ON_EVALUATE:
            cases.append(Case(f"evaluate-{name}", EVALUATE, _file(text, run=True), keep=("run",),
                              has=(f"line {BAD_LINE}",), why=why))
    for name, (setup, path, why) in FILES.items():
        extra = {"has": (path,) if name not in ("dev-zero", "utf-16") else (), "why": why,
                 "lacks": ("does not exist",), "check": names_cap("text") if name == "sparse-over-cap" else None}
        cases.append(Case(f"train-{name}", [*TRAIN[:3], path, *TRAIN[4:]], setup, absent=("out",), **extra))
        cases.append(Case(f"evaluate-{name}", [*EVALUATE[:3], path], _special(setup, run=True), keep=("run",), **extra))
    numbers = [{"tokens": ["a", "b"][: 1 + i % 2], "label": [1, 1.0, 2][i % 3]} for i in range(24)]
    cases.append(Case("train-labels-1-and-1.0", TRAIN, _file("".join(json.dumps(r) + "\n" for r in numbers)),
                      expect=0, seconds=20, check=_classes("1", "2"), why="1 and 1.0 are one class, not two"))
    long = "".join(json.dumps(r) + "\n" for r in CLASSIFY_LINES[:5] + LONG + CLASSIFY_LINES[5:])
    one_epoch = [*TRAIN[:6], "--max-steps", "6", *TRAIN[8:]]  # 23 training sequences in batches of 4: the long
    cases.append(Case("train-long-sequence", one_epoch, _file(long), expect=0, seconds=20,  # one is trained once
                      grow_mb=1024, check=_warns_of_length,  # its activations for backward: ~0.4 GiB, fair
                      why="a 200,000-step sequence among 4-step ones: a warning, and one epoch of 6 steps in "
                          "seconds, not minutes"))
    cases.append(Case("train-long-sequence-max-length", [*TRAIN, "max_length=1000"], _file(long), absent=("out",),
                      lacks=("unknown config key",), has=("line 6",), why="max_length refuses it, naming the line"))
    cases.append(Case("evaluate-long-sequence", EVALUATE, _file(long, run=True), expect=0, seconds=10,
                      why="scoring a 200,000-step sequence is one pass"))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return run_cases(CASES, tmp_path_factory.mktemp("jsonl"))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_hostile_jsonl_file_gets_one_error_line(case, outcomes):
    assert_contract(case, outcomes[case.id])
