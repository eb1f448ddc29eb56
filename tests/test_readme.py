"""The README stays true: its "From Python" blocks run and print what it shows, and its layout lists every
module of the package (and no module that is gone)."""

import contextlib
import io
import os
import re

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


def test_the_from_python_blocks_run_and_print_what_the_readme_shows(tmp_path, monkeypatch):
    blocks = python_blocks(_section("From Python"))
    assert len(blocks) >= 3 and all(output is not None for _, output in blocks)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for code, expected in blocks:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 -- the README's own code
        assert printed.getvalue() == expected, code
    docs = os.path.join(HERE, os.pardir, "docs")
    assert (tmp_path / "hello.png").read_bytes() == open(os.path.join(docs, "hello.png"), "rb").read()
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_the_layout_lists_every_module_and_only_modules_that_exist():
    layout = _section("Layout")
    listed = set(re.findall(r"^  ([\w/]+\.py)\b", layout, flags=re.M))
    present = {os.path.relpath(os.path.join(folder, name), PACKAGE).replace(os.sep, "/")
               for folder, _, names in os.walk(PACKAGE) for name in names if name.endswith(".py")}
    assert present - listed == set(), "modules missing from the README's layout"
    assert listed - present == set(), "the README's layout lists modules that do not exist"
