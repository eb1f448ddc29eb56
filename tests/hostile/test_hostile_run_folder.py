"""A tiny trained run whose files are damaged one at a time, read by ``sample``, ``evaluate``, ``plot``,
``write`` and ``train --resume``: config.json, vocab.json, model.safetensors, train_state.pt and
metrics.jsonl made FIFOs, links to /dev/zero, folders, truncated, random, 5,000-digit integers, NaN, nesting
past the parser's stack, sizes the weights do not have (hidden_size 4000 or 1,000,000, num_layers 100,000:
refused from the safetensors header before a model is built, in bounded memory), a pickle that would run code.

Expectations: every damaged file gives one error line and leaves the run as it was, except a damaged line of
metrics.jsonl, which ``plot`` skips (exit 0: the curves of the good lines) and ``--resume`` drops with a
warning naming metrics.jsonl (exit 0: the run goes on to step 30). NaN and 1e400 are read as damage too."""

import json
import os
import pickle
import random
import struct

import pytest
import torch

from hostile_harness import Case, assert_contract, case_id, names_cap, run_cases
from hostile_inputs import copy_run, fifo, huge_int, link, nested, sparse, write
from rnnlab.files import LIMITS

SAMPLE = ["sample", "{case}/run", "--length", "20", "--seed", "1"]
EVALUATE = ["evaluate", "{case}/run"]
PLOT = ["plot", "{case}/run", "-o", "{case}/curves.png"]
RESUME = ["train", "charlm", "--out", "{case}/run", "--resume", "--max-steps", "30"]
WRITE = ["write", "hello", "--model", "{case}/syn", "-o", "{case}/out.svg", "--seed", "1"]
COMMANDS = {"sample": SAMPLE, "evaluate": EVALUATE, "plot": PLOT, "resume": RESUME}


def raw(keys: tuple, literal: str):
    """Damage: set ``keys`` of a JSON file to the JSON text ``literal`` (which json.dumps could not write)."""
    def damage(path):
        data = json.load(open(path))
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = "@@RAW@@"
        write(path, json.dumps(data, indent=2).replace('"@@RAW@@"', literal))
    return damage


def content(data):
    return lambda path: write(path, data)


def truncated(path):
    data = open(path, "rb").read()
    write(path, data[: len(data) // 2])


def junk(path):
    write(path, random.Random(0).randbytes(4096))


def folder(path):
    os.remove(path)
    os.mkdir(path)


def to_fifo(path):
    fifo(path)


def to_dev_zero(path):
    link(path, "/dev/zero")


def over_cap(kind):
    return lambda path: sparse(path, LIMITS[kind] + 1, b"{")


def safetensors_header(header: dict, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


HUGE_SHAPES = safetensors_header({"decoder.weight": {"dtype": "F32", "shape": [1 << 40, 1 << 20],
                                                     "data_offsets": [0, 1 << 62]}}, b"\0" * 64)
HUGE_HEADER = struct.pack("<Q", 1 << 62) + b"{}"
_DIGITS = b'{"decoder.weight":{"dtype":"F32","shape":[%s],"data_offsets":[0,4]}}' % huge_int().encode()
HUGE_DIGITS = struct.pack("<Q", len(_DIGITS)) + _DIGITS + b"\0" * 4


def nan_weights(path):
    from safetensors.torch import load_file, save_file

    tensors = load_file(path)
    tensors["decoder.weight"][0, 0] = float("nan")
    save_file(tensors, path)


class RunsCode:
    """Unpickling it calls os.system: torch.load(weights_only=True) must refuse it, and nothing may run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def evil_pickle(zip_format: bool):
    def damage(path):
        evil = {"step": 20, "model": RunsCode(os.path.join(os.path.dirname(os.path.dirname(path)), "pwned"))}
        if zip_format:
            torch.save(evil, path)
        else:
            with open(path, "wb") as f:
                pickle.dump(evil, f)
    return damage


CONFIG = {  # damage of config.json -> the commands besides sample that read it
    "fifo": (to_fifo, ("sample", "evaluate", "plot", "resume")),
    "dev-zero-link": (to_dev_zero, ("sample", "plot", "resume")),
    "folder": (folder, ()),
    "empty": (content(""), ()),
    "truncated": (truncated, ("resume",)),
    "over-cap": (over_cap("config"), ()),
    "utf-16": (lambda p: write(p, open(p).read().encode("utf-16")), ()),
    "top-level-list": (content("[1, 2]"), ()),
    "deep-nesting": (raw(("config", "hidden_size"), "[" * 100_000 + "]" * 100_000), ("plot", "resume")),
    "5000-digit-int": (raw(("config", "hidden_size"), huge_int()), ("evaluate", "plot", "resume")),
    "5000-digit-seed": (raw(("config", "seed"), huge_int()), ()),
    "nan-lr": (raw(("config", "lr"), "NaN"), ("resume",)),
    "infinity-clip": (raw(("config", "clip"), "Infinity"), ()),
    "1e400-lr": (raw(("config", "lr"), "1e400"), ()),
    "hidden-4000": (raw(("config", "hidden_size"), "4000"), ("evaluate", "resume")),
    "hidden-1000000": (raw(("config", "hidden_size"), "1000000"), ("evaluate", "resume")),
    "layers-100000": (raw(("config", "num_layers"), "100000"), ("resume",)),
    "hidden-1e300": (raw(("config", "hidden_size"), "1e300"), ()),
    "embedding-10000000": (raw(("config", "embedding_size"), "10000000"), ()),
    "seq-len-10**12": (raw(("config", "seq_len"), "1000000000000"), ("evaluate",)),
    "hidden-list": (raw(("config", "hidden_size"), "[16]"), ()),
    "hidden-true": (raw(("config", "hidden_size"), "true"), ()),
    "hidden-null": (raw(("config", "hidden_size"), "null"), ()),
    "hidden-16.5": (raw(("config", "hidden_size"), "16.5"), ()),
    "lr-word": (raw(("config", "lr"), '"fast"'), ()),
    "config-list": (raw(("config",), "[]"), ()),
    "task-number": (raw(("task",), "5"), ()),
    "task-unknown": (raw(("task",), '"nosuch"'), ()),
    "task-wordlm": (raw(("task",), '"wordlm"'), ()),
}
VOCAB = {
    "fifo": (to_fifo, ("sample", "plot")), "dev-zero-link": (to_dev_zero, ()), "folder": (folder, ()),
    "truncated": (truncated, ()), "over-cap": (over_cap("vocabulary"), ()), "junk": (junk, ()),
    "deep-nesting": (raw(("tokens",), nested()), ()), "5000-digit-token": (raw(("tokens", 0), huge_int()), ()),
    "number-tokens": (raw(("tokens",), "[1, 2, 3]"), ()), "token-dropped": (raw(("tokens",), '["a", "b"]'), ()),
    "duplicate-token": (raw(("tokens", 1), '"\\n"'), ()), "kind-unknown": (raw(("kind",), '"pixels"'), ()),
    "30000-tokens": (raw(("tokens",), json.dumps([f"t{i}" for i in range(30000)])), ()),
}
WEIGHTS = {
    "fifo": (to_fifo, ("sample", "evaluate")), "dev-zero-link": (to_dev_zero, ()), "folder": (folder, ()),
    "truncated": (truncated, ()), "empty": (content(b""), ()), "junk": (junk, ()),
    "huge-shapes": (content(HUGE_SHAPES), ()), "huge-header-length": (content(HUGE_HEADER), ()),
    "5000-digit-shape": (content(HUGE_DIGITS), ()), "nan-weight": (nan_weights, ()),
}
STATE = {
    "fifo": (to_fifo, ("resume",)), "dev-zero-link": (to_dev_zero, ("resume",)), "folder": (folder, ("resume",)),
    "truncated": (truncated, ("resume",)), "empty": (content(b""), ("resume",)), "junk": (junk, ("resume",)),
    "pickle-runs-code": (evil_pickle(False), ("resume",)), "torch-save-runs-code": (evil_pickle(True), ("resume",)),
    "missing-keys": (lambda p: torch.save({"step": 20}, p), ("resume",)),
    "not-a-dict": (lambda p: torch.save([1, 2, 3], p), ("resume",)),
}


def append(line: bytes):
    def damage(path):
        with open(path, "ab") as f:
            f.write(line)
    return damage


def cut_last_line(path):
    data = open(path, "rb").read().rstrip(b"\n")
    write(path, data[: data.rfind(b"\n") + 1 + 20])


BAD_LINE = b'{"step": 21, "split": "train", "loss": %s}\n'
METRICS_LINES = {  # a damaged line among good ones: plot exit 0, resume exit 0 with a warning (None: no warning needed)
    "5000-digit-line": (append(BAD_LINE % huge_int().encode()), True),
    "nan-line": (append(BAD_LINE % b"NaN"), False),
    "1e400-line": (append(BAD_LINE % b"1e400"), False),
    "deep-line": (append(nested().encode() + b"\n"), True),
    "junk-line": (append(random.Random(1).randbytes(300).replace(b"\n", b" ") + b"\n"), True),
    "cut-last-line": (cut_last_line, True),
    "5000-digit-step": (append(b'{"step": %s, "split": "train", "loss": 1.0}\n' % huge_int().encode()), True),
}
METRICS_FILES = {  # the whole file unusable: both commands exit 2
    "fifo": to_fifo, "dev-zero-link": to_dev_zero, "folder": folder, "over-cap": over_cap("metrics"),
}
SYNTHESIS = {  # damage of the synthesis run's config.json, read by write
    "chars-per-step-1e-30": raw(("config", "chars_per_step"), "1e-30"),
    "std-dx-1e300": raw(("config", "std_dx"), "1e300"),
    "window-100000": raw(("config", "window_gaussians"), "100000"),
    "max-text-length-5000-digits": raw(("config", "max_text_length"), huge_int()),
    "fifo": to_fifo,
}


def damaged(file: str, damage, kind: str = "charlm", name: str = "run"):
    def setup(case):
        damage(os.path.join(copy_run(kind, case, name), file))
    return setup


def _cases():
    cases = []
    memory = {"grow_mb": 150, "why": "the config disagrees with the weights: refused from the safetensors header, "
                                     "before a model is built"}
    for file, table in (("config.json", CONFIG), ("vocab.json", VOCAB), ("model.safetensors", WEIGHTS),
                        ("train_state.pt", STATE)):
        for name, (damage, commands) in table.items():
            for command in commands if file == "train_state.pt" else dict.fromkeys(("sample", *commands)):
                extra = memory if name.startswith(("hidden-", "layers-", "embedding-")) else {}
                cases.append(Case(f"{command}-{file}-{name}", COMMANDS[command], damaged(file, damage),
                                  keep=("run",), absent=("pwned", "curves.png"),
                                  seconds=20 if command == "resume" else 5,
                                  check=names_cap("config" if file == "config.json" else "vocabulary")
                                  if name == "over-cap" and file.endswith(".json") else None, **extra))
    for name, (damage, warns) in METRICS_LINES.items():
        cases.append(Case(f"plot-metrics-{name}", PLOT, damaged("metrics.jsonl", damage), expect=0, keep=("run",),
                          why="the good lines are drawn"))
        cases.append(Case(f"resume-metrics-{name}", RESUME, damaged("metrics.jsonl", damage), expect=0, seconds=20,
                          check=_continued(warns), why="the line is dropped" + (" with a warning" if warns else "")))
    cases.append(Case("plot-metrics-all-junk", PLOT, damaged("metrics.jsonl", junk), keep=("run",),
                      why="nothing to draw: one line saying so"))
    for name, damage in METRICS_FILES.items():
        for command in ("plot", "resume"):
            cases.append(Case(f"{command}-metrics-{name}", COMMANDS[command], damaged("metrics.jsonl", damage),
                              keep=("run",), seconds=20 if command == "resume" else 5,
                              check=names_cap("metrics") if name == "over-cap" else None))
    for name, damage in SYNTHESIS.items():
        setup = _with_drawing(damaged("config.json", damage, "synthesis", "syn"))
        cases.append(Case(f"write-config-{name}", WRITE, setup, keep=("syn", "out.svg")))
    for file in ("vocab.json", "model.safetensors"):
        cases.append(Case(f"write-{file}-fifo", WRITE, _with_drawing(damaged(file, to_fifo, "synthesis", "syn")),
                          keep=("syn", "out.svg")))
    return cases


def _with_drawing(setup):
    def both(case):
        setup(case)
        write(case / "out.svg", "<svg>an earlier drawing</svg>\n")
    return both


def _continued(warns: bool):
    def check(result, folder):
        records = [json.loads(line) for line in open(os.path.join(folder, "run", "metrics.jsonl"))]
        if max(r["step"] for r in records) != 30:
            return f"the run did not go on to step 30 (last step {max(r['step'] for r in records)})"
        if warns and not any("metrics.jsonl" in line for line in result["stderr_lines"]):
            return "no warning names metrics.jsonl, whose damaged line was dropped"
        return None
    return check


CASES = _cases()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return run_cases(CASES, tmp_path_factory.mktemp("run-folder"))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_damaged_run_folder_gets_one_error_line(case, outcomes):
    assert_contract(case, outcomes[case.id])
