"""Small IAM-OnDB trees written into a test's tmp_path: line XMLs of given strokes and CSR transcriptions
laid out as the corpus is (``lineStrokes/a01/a01-000/a01-000u-01.xml``, ``ascii/a01/a01-000/a01-000u.txt``),
and the 4-form sample packed as the ``.tar.xz`` it ships in. Shared by tests/data/test_strokes.py (the reader)
and tests/data/test_iamondb.py (the cache and archives)."""

import io
import os
import tarfile

import pytest

from conftest import shared_data
from rnnlab.data import strokes as st


def line_xml(strokes) -> str:
    """A line XML whose <Stroke>s hold the ``(x, y)`` points of each of ``strokes``."""
    body = "".join("<Stroke>" + "".join(f'<Point x="{x}" y="{y}" time="0"/>' for x, y in s) + "</Stroke>"
                   for s in strokes)
    return f'<?xml version="1.0" encoding="ISO-8859-1"?><WhiteboardCaptureSession><StrokeSet>{body}</StrokeSet></WhiteboardCaptureSession>'


@pytest.fixture(scope="module")
def sample():
    """The 4-form IAM-OnDB sample of ../shared/data (the test is skipped where it is absent)."""
    return shared_data("handwriting", "iamondb-sample")


@pytest.fixture(scope="module")
def sample_lines(sample):
    return st.read_iamondb(sample)


GOOD = line_xml([[(100, 500), (110, 490), (120, 500)], [(150, 480), (155, 470)]])


def fake_tree(root, forms, texts):
    """forms: form id -> {file name: XML text}; texts: form id -> CSR lines (None: no CSR section)."""
    for form, files in forms.items():
        folder = root / "lineStrokes" / form[:3] / form[:7]
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (folder / name).write_text(content, encoding="latin-1")
    for form, csr in texts.items():
        folder = root / "ascii" / form[:3] / form[:7]
        folder.mkdir(parents=True, exist_ok=True)
        body = "OCR:\n\nwrong text\n" + ("" if csr is None else "CSR:\n\n" + "\n".join(csr) + "\n")
        (folder / f"{form}.txt").write_text(body, encoding="latin-1")
    return str(root)


def pack(sample, path, evil: bool = False):
    """The sample folder packed as the IAM-OnDB .tar.xz is; with ``evil``, plus a member escaping by ".."."""
    with tarfile.open(path, "w:xz", preset=1) as tar:
        for part in ("lineStrokes", "ascii"):
            tar.add(os.path.join(sample, part), arcname=part)
        if evil:  # a member that would land outside the cache
            member = tarfile.TarInfo("../escaped.txt")
            member.size = 3
            tar.addfile(member, io.BytesIO(b"bad"))
    return path
