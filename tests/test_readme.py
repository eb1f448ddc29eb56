"""The README stays true: its "From Python" blocks run and print what it shows, and its layout lists every
module of the package (and no module that is gone)."""

import contextlib
import io
import math
import os
import re

import numpy as np
from PIL import Image

import rnnlab

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, os.pardir, "README.md")
PACKAGE = os.path.dirname(os.path.abspath(rnnlab.__file__))


def _section(title: str) -> str:
    text = open(README, encoding="utf-8").read()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def python_blocks(section: str) -> list[tuple[str, str | None]]:
    """Each ```python block of ``section`` with the ```text block right after it (what it prints), or None."""
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)
    pairs = []
    for i, (kind, body) in enumerate(blocks):
        if kind == "python":
            follows = blocks[i + 1] if i + 1 < len(blocks) else None
            pairs.append((body, follows[1] if follows and follows[0] == "text" else None))
    return pairs


# Sampling from fixed weights gives the same numbers on any x86 CPU (measured on AVX-512 and AVX2), but 300
# steps of training do not: the float sums run in another order on another vector width, or on another
# microarchitecture of the same width (an AVX-512 Xeon with AMX ends elsewhere than the AVX-512 VM that
# printed the README's block), so off that CPU the training block is held to what does not depend on it.
METRICS = re.compile(r"([\d.]+) nats/char \(([\d.]+) bits\) on ([\d,]+) characters\n")


def trained_elsewhere_alike(got: str, expected: str) -> bool:
    """The training block's output from a CPU of another width: the same prime and sample length, the same
    characters scored, bits that are the nats in base 2, and a loss within 0.1 nats of the README's."""
    got_metrics, expected_metrics = METRICS.search(got), METRICS.search(expected)
    if not got_metrics or got_metrics.end() != len(got):
        return False
    nats, bits = float(got_metrics[1]), float(got_metrics[2])
    sample, expected_sample = got[: got_metrics.start()], expected[: expected_metrics.start()]
    return (sample.split("\n")[0] == expected_sample.split("\n")[0] and len(sample) == len(expected_sample)
            and got_metrics[3] == expected_metrics[3] and abs(bits - nats / math.log(2)) < 2e-3
            and abs(nats - float(expected_metrics[1])) < 0.1)


def same_picture(path, reference) -> bool:
    """Byte for byte, or (another CPU's rounding moves a point by a fraction of a pixel) the same size with
    at most 0.1 % of the pixels differing: the AMX Xeon of 2026-12-03 differed in 6 of 78,000."""
    if open(path, "rb").read() == open(reference, "rb").read():
        return True
    got, want = (np.asarray(Image.open(p).convert("L"), dtype=np.int16) for p in (path, reference))
    return got.shape == want.shape and (got != want).mean() <= 1e-3


def test_the_from_python_blocks_run_and_print_what_the_readme_shows(tmp_path, monkeypatch):
    blocks = python_blocks(_section("From Python"))
    assert len(blocks) >= 3 and all(output is not None for _, output in blocks)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for code, expected in blocks:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 -- the README's own code
        if "rnnlab.train(" not in code:
            assert printed.getvalue() == expected, code
        else:
            got = printed.getvalue()
            assert got == expected or trained_elsewhere_alike(got, expected), (code, got)
    docs = os.path.join(HERE, os.pardir, "docs")
    assert same_picture(tmp_path / "hello.png", os.path.join(docs, "hello.png"))
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_a_training_block_from_another_cpu_is_held_to_what_does_not_depend_on_it():
    expected = next(out for code, out in python_blocks(_section("From Python")) if "rnnlab.train(" in code)
    avx2 = ("ROMEO:\nCawest here the uagl, thastintor af cemens wint anvif teachich\n\nOWoNH RCLISOZ:\nIoalg gaies, "
            "wots nongrit of fon or doun\n2.309 nats/char (3.331 bits) on 111,450 characters\n")  # AVX2, 2026-12-02
    assert trained_elsewhere_alike(avx2, expected)
    assert trained_elsewhere_alike(expected, expected)
    assert not trained_elsewhere_alike(avx2.replace("2.309 nats/char (3.331", "2.509 nats/char (3.620"), expected)
    assert not trained_elsewhere_alike(avx2.replace("(3.331", "(3.377"), expected)  # bits that are not the nats
    assert not trained_elsewhere_alike(avx2.replace("111,450", "111,449"), expected)
    assert not trained_elsewhere_alike(avx2.replace("doun\n", "dou\n"), expected)  # a shorter sample
    assert not trained_elsewhere_alike(avx2.replace("ROMEO:", "JULIET"), expected)
    assert not trained_elsewhere_alike(avx2 + "more\n", expected)


def test_the_layout_lists_every_module_and_only_modules_that_exist():
    layout = _section("Layout")
    listed = set(re.findall(r"^  ([\w/]+\.py)\b", layout, flags=re.M))
    present = {os.path.relpath(os.path.join(folder, name), PACKAGE).replace(os.sep, "/")
               for folder, _, names in os.walk(PACKAGE) for name in names if name.endswith(".py")}
    assert present - listed == set(), "modules missing from the README's layout"
    assert listed - present == set(), "the README's layout lists modules that do not exist"
