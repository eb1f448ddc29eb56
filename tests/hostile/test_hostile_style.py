"""Hostile ``rnnlab write --style`` files and flags, on a tiny synthesis run (and the bundled model for its
style numbers): special files, integers past 4,300 digits, NaN, infinities and float32 overflow, wrong shapes,
empty or unwritable texts, nesting past the parser's stack, a style number out of range, and ``-o X
--show-attention X`` by three spellings. An existing drawing at ``-o`` must keep every byte."""

import os

import pytest

from hostile_harness import Case, assert_contract, case_id, names_cap, run_cases
from hostile_inputs import copy_run, fifo, huge_int, link, nested, sparse, write
from rnnlab.files import LIMITS

GOOD_ROWS = "[0, 0, 0], [1.5, -2, 0], [3, 1, 1]"
STYLES = {  # name -> (the file's content, why)
    "huge-int": ('{"text": "hello", "offsets": [[%s, 0, 0], [1, 1, 1]]}' % huge_int(), "a 5,000-digit offset"),
    "nan": ('{"text": "hello", "offsets": [[NaN, 0, 0], [1, 1, 1]]}', "NaN"),
    "infinity": ('{"text": "hello", "offsets": [[Infinity, 0, 0], [1, 1, 1]]}', "Infinity"),
    "1e400": ('{"text": "hello", "offsets": [[1e400, 0, 0], [1, 1, 1]]}', "1e400: infinite as a float"),
    "1e300": ('{"text": "hello", "offsets": [[1e300, 0, 0], [1, 1, 1]]}', "finite, but infinite as float32"),
    "two-columns": ('{"text": "hello", "offsets": [[0, 0], [1, 1]]}', "rows of 2"),
    "ragged": ('{"text": "hello", "offsets": [[0, 0, 0], [1, 1]]}', "rows of 3 and 2"),
    "three-d": ('{"text": "hello", "offsets": [[[0, 0, 0]], [[1, 1, 1]]]}', "a 3-D array"),
    "one-row": ('{"text": "hello", "offsets": [[0, 0, 1]]}', "a single point"),
    "no-rows": ('{"text": "hello", "offsets": []}', "no points"),
    "string-offsets": ('{"text": "hello", "offsets": "0 0 0"}', "a string for the offsets"),
    "string-cells": ('{"text": "hello", "offsets": [["0", "0", "0"], ["1", "1", "1"]]}', "strings for numbers"),
    "null-cells": ('{"text": "hello", "offsets": [[null, 0, 0], [1, 1, 1]]}', "null for a number"),
    "empty-text": ('{"text": "", "offsets": [%s]}' % GOOD_ROWS, "an empty text"),
    "blank-text": ('{"text": "   ", "offsets": [%s]}' % GOOD_ROWS, "a text of spaces"),
    "number-text": ('{"text": 5, "offsets": [%s]}' % GOOD_ROWS, "a number for the text"),
    "outside-alphabet": ('{"text": "\u65e5\u672c\u8a9e", "offsets": [%s]}' % GOOD_ROWS,
                         "characters the model cannot write"),
    "list-of-styles": ('[{"text": "hello", "offsets": [%s]}]' % GOOD_ROWS, "styles.json's form, not one style"),
    "no-keys": ("{}", "an empty object"),
    "scalar": ("5", "a number"),
    "deep-nesting": (nested(), "[[[...]]] 100,000 deep"),
    "deep-offsets": ('{"text": "hello", "offsets": %s}' % nested(100_000), "offsets 100,000 deep"),
    "truncated": ('{"text": "hello", "offsets": [[0, 0, 0], [1, ', "cut short"),
    "empty-file": ("", "no bytes"),
    "latin-1": ('{"text": "caf\u00e9", "offsets": [%s]}' % GOOD_ROWS, "Latin-1, not UTF-8"),
    "utf-16": ('{"text": "hello", "offsets": [%s]}' % GOOD_ROWS, "UTF-16"),
}
ENCODING = {"latin-1": "latin-1", "utf-16": "utf-16"}
SPECIAL = {  # name -> (setup of {case}/style.json, the path given, why)
    "fifo": (lambda f: fifo(f / "style.json"), "{case}/style.json", "a FIFO"),
    "dev-zero": (None, "/dev/zero", "/dev/zero"),
    "dev-zero-link": (lambda f: link(f / "style.json", "/dev/zero"), "{case}/style.json", "a link to /dev/zero"),
    "folder": (lambda f: os.mkdir(f / "style.json"), "{case}/style.json", "a folder"),
    "sparse-over-cap": (lambda f: sparse(f / "style.json", LIMITS["style"] + 1, b'{"text": "a", '), "{case}/style.json",
                        "a sparse file past the style cap"),
}
WRITE = ["write", "hello", "--model", "{case}/syn", "-o", "{case}/out.svg", "--seed", "1"]
KEEP = ("syn", "out.svg")


def _setup(content=None, encoding="utf-8", special=None, attention_link=False):
    def setup(folder):
        copy_run("synthesis", folder, "syn")
        write(folder / "out.svg", "<svg>an earlier drawing</svg>\n")
        if content is not None:
            write(folder / "style.json", content.encode(encoding))
        if special:
            special(folder)
        if attention_link:
            link(folder / "same.svg", folder / "out.svg")
    return setup


def _cases():
    cases = [Case(f"style-{name}", [*WRITE, "--style", "{case}/style.json"],
                  _setup(content, ENCODING.get(name, "utf-8")), keep=(*KEEP, "style.json"), why=why)
             for name, (content, why) in STYLES.items()]
    for name, (special, path, why) in SPECIAL.items():
        cases.append(Case(f"style-{name}", [*WRITE, "--style", path], _setup(special=special), keep=KEEP, why=why,
                          has=(path,) if name != "dev-zero" else (), lacks=("no such file", "does not exist"),
                          check=names_cap("style") if name == "sparse-over-cap" else None))
    numbers = {"99-of-none": ("99", "{case}/syn"), "99-of-4": ("99", "builtin:handwriting"),
               "minus-1": ("-1", "builtin:handwriting"), "past-int64": ("9" * 30, "builtin:handwriting"),
               "5000-digits": (huge_int(), "builtin:handwriting")}
    for name, (number, model) in numbers.items():
        argv = ["write", "hello", "--model", model, "-o", "{case}/out.svg", "--style", number]
        cases.append(Case(f"style-number-{name}", argv, _setup(), keep=KEEP, max_chars=500,
                          why="a style number the model does not have"))
    same = {"same-name": "{case}/out.svg", "dot-slash": "{case}/./out.svg", "symlink": "{case}/same.svg"}
    for name, path in same.items():
        cases.append(Case(f"attention-{name}", [*WRITE, "--show-attention", path], _setup(attention_link=True),
                          keep=KEEP, why="-o and --show-attention are one file: the second write replaces the first"))
    cases.append(Case("attention-relative", ["write", "hello", "--model", "{case}/syn", "-o", "out.svg",
                                             "--show-attention", "{case}/out.svg"], _setup(), keep=KEEP,
                      why="one file named relative to the cwd and absolute"))
    cases.append(Case("output-in-missing-folder", ["write", "hello", "--model", "{case}/syn", "-o",
                                                   "{case}/nowhere/out.svg"], _setup(), keep=KEEP))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return run_cases(CASES, tmp_path_factory.mktemp("style"))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_hostile_style_gets_one_error_line(case, outcomes):
    assert_contract(case, outcomes[case.id])
