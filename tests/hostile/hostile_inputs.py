"""What the hostile cases are made of: tiny trained runs (trained once per session, copied before damage),
special and sparse files, integers past Python's 4,300-digit limit, nesting past a parser's stack, and a small
IAM-OnDB tree. Everything here runs in the parent, in a case's setup."""

import atexit
import contextlib
import io
import json
import os
import shutil
import tempfile

_TRAINED: dict = {}
TEXT = "the quick brown fox jumps over the lazy dog.\nhello world, hello rnn.\n" * 60  # conftest's text_file
TINY_CHARLM = ["hidden_size=16", "num_layers=1", "seq_len=8", "batch_size=4", "eval_interval=10", "log_interval=5",
               "preview_length=20"]  # conftest.TINY
# The brief's synthesis keys (40 lines of ~500 points) take 43 s for 4 steps here; these take 2 s.
TINY_SYNTHESIS = ["window_gaussians=2", "hidden_size=8", "num_layers=1", "mixtures=3", "synthetic_lines=12",
                  "valid_fraction=0.25", "batch_size=4", "eval_interval=2", "sample_points=0", "point_stride=4"]
CLASSIFY_LINES = [{"tokens": list("ab" * (1 + i % 3)), "label": str(1 + i % 2)} for i in range(24)]
TINY_CLASSIFY = ["hidden_size=8", "embedding_size=4", "batch_size=4", "eval_interval=2", "log_interval=1"]
TINY_WORDLM = ["hidden_size=8", "embedding_size=8", "num_layers=1", "seq_len=5", "batch_size=2", "eval_interval=4",
               "log_interval=2", "eval_batch_size=2"]
WORDS = "the cat sat on the mat\nthe dog sat on the log\n" * 20


# A small IAM-OnDB tree, laid out as the corpus is (tests/data/iamondb_fakes.py makes others like it).
FORMS = {"a01-000u": ["hello there", "a quiet fox"], "a02-000u": ["seven seas", "over the moon"],
         "b03-000u": ["rain on tin", "sun at noon"]}


def line_xml(offset: int = 0) -> str:
    """A line XML of three strokes of ten points (plenty after the run's point_stride of 4)."""
    strokes = "".join("<Stroke>" + "".join(f'<Point x="{100 + 30 * s + 3 * i + offset}" y="{500 - (i % 4) * 5}" '
                                           f'time="0"/>' for i in range(10)) + "</Stroke>" for s in range(3))
    return (f'<?xml version="1.0" encoding="ISO-8859-1"?><WhiteboardCaptureSession><StrokeSet>{strokes}'
            f"</StrokeSet></WhiteboardCaptureSession>")


def xml_path(root, form: str, n: int):
    return os.path.join(root, "lineStrokes", form[:3], form[:7], f"{form}-{n:02d}.xml")


def fake_tree(root) -> str:
    """FORMS laid out as the corpus is: lineStrokes/a01/a01-000/a01-000u-01.xml and ascii/a01/a01-000/a01-000u.txt."""
    for form, texts in FORMS.items():
        for n, _ in enumerate(texts, 1):
            write(xml_path(root, form, n), line_xml(n))
        write(os.path.join(root, "ascii", form[:3], form[:7], f"{form}.txt"),
              "OCR:\n\nwrong\nCSR:\n\n" + "\n".join(texts) + "\n")
    return str(root)


def trained(kind: str) -> str:
    """The folder of a tiny run of ``kind`` (charlm, synthesis, classify, wordlm), trained once per session in
    this process (a few seconds each). Copy it (:func:`copy_run`) before damaging it."""
    if kind not in _TRAINED:
        from rnnlab.cli import main

        root = tempfile.mkdtemp(prefix=f"rnnlab-hostile-{kind}-")
        atexit.register(shutil.rmtree, root, True)
        out = os.path.join(root, "run")
        if kind == "charlm":
            data = write(os.path.join(root, "text.txt"), TEXT)
            argv = ["train", "charlm", "--data", data, "--max-steps", "20", "--set", *TINY_CHARLM]
        elif kind == "synthesis":
            argv = ["train", "synthesis", "--max-steps", "2", "--set", *TINY_SYNTHESIS]
        elif kind == "classify":
            data = write(os.path.join(root, "data.jsonl"), "".join(json.dumps(r) + "\n" for r in CLASSIFY_LINES))
            argv = ["train", "classify", "--data", data, "--max-steps", "4", "--set", *TINY_CLASSIFY]
        elif kind == "wordlm":
            corpus = os.path.join(root, "corpus")
            for split in ("train", "valid", "test"):
                write(os.path.join(corpus, f"{split}.txt"), WORDS)
            argv = ["train", "wordlm", "--data", corpus, "--max-steps", "8", "--set", *TINY_WORDLM]
        else:
            raise ValueError(kind)
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            status = main([*argv, "--out", out, "--device", "cpu"])
        assert status == 0, f"training the tiny {kind} run failed:\n{captured.getvalue()[-3000:]}"
        _TRAINED[kind] = out
    return _TRAINED[kind]


def copy_run(kind: str, folder, name: str = "run") -> str:
    """A fresh copy of the tiny ``kind`` run at ``folder/name``."""
    return shutil.copytree(trained(kind), os.path.join(str(folder), name))


def write(path, content) -> str:
    """``content`` (str: UTF-8, or bytes) to ``path``, its folder made; returns the path."""
    os.makedirs(os.path.dirname(str(path)) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(content.encode() if isinstance(content, str) else content)
    return str(path)


def fifo(path) -> str:
    """A FIFO at ``path`` (replacing a file there): reading it blocks until a writer comes, which none does."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    os.makedirs(os.path.dirname(str(path)) or ".", exist_ok=True)
    os.mkfifo(path)
    return str(path)


def link(path, target) -> str:
    """A symbolic link ``path`` -> ``target`` (replacing a file there)."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    os.makedirs(os.path.dirname(str(path)) or ".", exist_ok=True)
    os.symlink(target, path)
    return str(path)


def sparse(path, size: int, head: bytes = b"") -> str:
    """A file of ``size`` bytes holding ``head`` and then a hole: no real bytes written (``truncate``)."""
    write(path, head)
    os.truncate(path, size)
    return str(path)


def huge_int(digits: int = 5000) -> str:
    """An integer literal past Python's 4,300-digit limit for int(str)."""
    return "1" + "0" * (digits - 1)


def nested(depth: int = 100_000) -> str:
    """``[[[...]]]`` ``depth`` deep: past any recursive parser's stack."""
    return "[" * depth + "]" * depth


