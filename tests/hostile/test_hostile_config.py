"""Hostile ``--config`` TOML files and ``--set`` flags, mostly through ``rnnlab config charlm`` (it reads and
checks the config as a training would, without training), and a few through ``rnnlab train`` (nothing may be
left behind): integers past 4,300 digits, NaN and infinities, arrays, tables, dates and booleans for numbers,
unknown and repeated keys, nesting past the parser's stack, special files and folders; and ``--set`` without
'=', with an empty key, with 100,000 characters (the error must be cut short), and before the task."""

import os

import pytest

from hostile_harness import Case, assert_contract, case_id, names_cap, run_cases
from hostile_inputs import TINY_CHARLM, fifo, huge_int, link, sparse, write
from rnnlab.files import LIMITS

TOML = {  # name -> (the file's content, why)
    "huge-int": (f"hidden_size = {huge_int()}\n", "an integer past Python's 4,300-digit limit"),
    "huge-int-seed": (f"seed = {huge_int()}\n", "the same for a key with its own check"),
    "nan-lr": ("lr = nan\n", "a NaN learning rate"),
    "inf-lr": ("lr = inf\n", "an infinite learning rate"),
    "minus-inf-clip": ("clip = -inf\n", "a negative infinity"),
    "nan-int": ("hidden_size = nan\n", "NaN for an integer key"),
    "inf-int": ("hidden_size = inf\n", "infinity for an integer key"),
    "fraction-for-int": ("hidden_size = 16.5\n", "a fraction for an integer key"),
    "1e300-for-int": ("hidden_size = 1e300\n", "an integral float of 301 digits: no size can be that"),
    "int64-overflow": ("hidden_size = 99999999999999999999\n", "an integer past int64: no tensor can have it"),
    "array": ("hidden_size = [16, 32]\n", "an array for a number"),
    "table": ("[hidden_size]\nwidth = 16\n", "a table for a number"),
    "inline-table": ("lr = {value = 0.1}\n", "an inline table for a number"),
    "date": ("hidden_size = 1979-05-27\n", "a date for a number"),
    "datetime": ("lr = 1979-05-27T07:32:00Z\n", "a date-time for a float"),
    "time": ("seed = 07:32:00\n", "a time of day for an integer"),
    "bool-for-int": ("hidden_size = true\n", "a boolean for an integer"),
    "bool-for-float": ("lr = false\n", "a boolean for a float"),
    "string-for-float": ('lr = "fast"\n', "a word for a float"),
    "int-for-string": ("cell = 5\n", "a number for a name"),
    "unknown-key": ("hiden_size = 16\n", "a misspelt key"),
    "repeated-key": ("lr = 0.1\nlr = 0.2\n", "a key given twice: invalid TOML"),
    "seed-past-2-63": ("seed = 9223372036854775808\n", "a seed torch cannot take"),
    "deep-array": ("x = " + "[" * 100_000 + "]" * 100_000 + "\n", "an array 100,000 deep: past the parser's stack"),
    "deep-inline-table": ("x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n", "inline tables 3,000 deep"),
    "not-toml": ("this is not toml\n", "prose"),
    "latin-1": ("cell = 'caf\u00e9'\n".encode("latin-1"), "not UTF-8"),
    "utf-16": ("lr = 0.1\n".encode("utf-16"), "UTF-16 with a byte-order mark"),
    "nul-bytes": (b"lr = 0.1\n\x00\x00\n", "NUL bytes"),
}
SPECIAL = {  # name -> (setup of {case}/bad.toml, the path given, why)
    "fifo": (lambda f: fifo(f / "bad.toml"), "{case}/bad.toml", "a FIFO"),
    "dev-zero": (None, "/dev/zero", "/dev/zero"),
    "dev-zero-link": (lambda f: link(f / "bad.toml", "/dev/zero"), "{case}/bad.toml", "a link to /dev/zero"),
    "folder": (lambda f: os.mkdir(f / "bad.toml"), "{case}/bad.toml", "a folder"),
    "dangling-link": (lambda f: link(f / "bad.toml", f / "gone.toml"), "{case}/bad.toml", "a link to nothing"),
    "sparse-over-cap": (lambda f: sparse(f / "bad.toml", LIMITS["config"] + 1, b"lr = 0.1\n"), "{case}/bad.toml",
                        "a sparse file past the config cap"),
}
# The TOML's hidden_size must not be overridden by the tiny one.
TRAIN = ["train", "charlm", "--out", "{case}/out", "--max-steps", "2", "--set",
         *(item for item in TINY_CHARLM if not item.startswith("hidden_size="))]
LONG = 100_000


def _toml(content):
    return lambda folder: write(folder / "bad.toml", content)


def _cases():
    cases = [Case(f"config-{name}", ["config", "charlm", "--config", "{case}/bad.toml"], _toml(content),
                  keep=("bad.toml",), why=why) for name, (content, why) in TOML.items()]
    for name in ("huge-int", "deep-array", "1e300-for-int", "int64-overflow"):
        content, why = TOML[name]
        cases.append(Case(f"train-{name}", [*TRAIN[:2], "--config", "{case}/bad.toml", *TRAIN[2:]], _toml(content),
                          absent=("out",), oom_ok=name in ("1e300-for-int", "int64-overflow"),
                          why=f"{why}; a new model asked to be huge may fairly be 'out of memory'"))
    for name, (setup, path, why) in SPECIAL.items():
        extra = {"has": (path,) if name != "dev-zero" else (), "lacks": ("does not exist",) if name != "dangling-link"
                 else (), "check": names_cap("config") if name == "sparse-over-cap" else None}
        cases.append(Case(f"config-{name}", ["config", "charlm", "--config", path], setup, why=why, **extra))
        cases.append(Case(f"train-{name}", [*TRAIN[:2], "--config", path, *TRAIN[2:]], setup, absent=("out",),
                          why=why, **extra))
    short = {"max_chars": 500, "why": "the error must cut a 100,000-character value short"}
    sets = {  # name -> (--set items, Case keywords)
        "no-equals": (["lr"], {}),
        "empty-key": (["=5"], {}),
        "only-equals": (["="], {}),
        "empty-int": (["hidden_size="], {}),
        "nan": (["lr=nan"], {}),
        "inf": (["lr=1e400"], {"why": "1e400 parses as infinity"}),
        "long-string-value": ([f"cell={'x' * LONG}"], short),
        "long-int-value": ([f"hidden_size={'9' * LONG}"], short),
        "long-float-value": ([f"lr={'9' * LONG}"], short),
        "long-key": ([f"{'k' * LONG}=1"], {**short, "max_chars": 1000}),  # the line lists the ~450 chars of keys
        "5000-digit-seed": ([f"seed={huge_int()}"], {"max_chars": 500}),
    }
    for name, (items, extra) in sets.items():
        cases.append(Case(f"set-{name}", ["config", "charlm", "--set", *items], **extra))
    cases.append(Case("train-set-long-value", [*TRAIN, f"cell={'x' * LONG}"], absent=("out",), **short))
    cases.append(Case("set-before-task-config", ["config", "--set", "lr=0.1", "charlm"], expect=(0, 2),
                      check=_set_placed, why="the task after --set: it must work, or say where the option goes"))
    cases.append(Case("set-before-task-train", ["train", "--set", "hidden_size=16", "charlm", "--out", "{case}/out",
                                                "--max-steps", "2"], expect=(0, 2), check=_set_placed,
                      seconds=20, why="the same for train"))
    cases.append(Case("set-repeated-key", ["config", "charlm", "--set", "lr=0.1", "lr=0.2"], expect=(0, 2),
                      check=_last_wins, why="a key given twice: the last wins (as flags do) or it is refused by name"))
    return cases


def _set_placed(result, folder):
    if result["rc"] == 0:
        return None
    line = result["stderr_lines"][0]
    return None if "--set" in line and "charlm" in line else "the error does not say where --set goes"


def _last_wins(result, folder):
    if result["rc"] == 2:
        return None if "lr" in result["stderr_lines"][0] else "the error does not name the repeated key"
    return None if "\nlr = 0.2\n" in "\n" + result["stdout"] else "the repeated key did not take its last value"


CASES = _cases()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return run_cases(CASES, tmp_path_factory.mktemp("config"))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_hostile_config_gets_one_error_line(case, outcomes):
    assert_contract(case, outcomes[case.id])
