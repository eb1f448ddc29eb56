"""Hostile IAM-OnDB folders and archives for ``rnnlab evaluate RUN --data X --split all`` (a tiny synthesis
run) and ``rnnlab train handwriting/synthesis --data X``: a line XML that is a FIFO, a link to /dev/zero or a
sparse file past the stroke-file cap, malformed XML, entity expansion (billion laughs, quadratic blow-up, an
external entity on /dev/zero), and .tar.xz archives truncated, empty, not archives, or holding members that
escape (``../``, absolute names, links, devices, FIFOs) or expand to 40 MB. A bad line is skipped (exit 0:
the other lines are scored); nothing is ever written outside the cache ($RNNLAB_DATA, here {case}/cache)."""

import io
import os
import tarfile

import pytest

from hostile_harness import Case, assert_contract, case_id, run_cases
from hostile_inputs import FORMS, copy_run, fake_tree, fifo, line_xml, link, sparse, write, xml_path
from rnnlab.files import LIMITS

LAUGHS = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "ha">'
          + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
          + ']><WhiteboardCaptureSession><StrokeSet><Stroke><Point x="&j;" y="1" time="0"/></Stroke></StrokeSet>'
            "</WhiteboardCaptureSession>")
BLOWUP = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "' + "x" * 100_000 + '">]><WhiteboardCaptureSession>'
          "<StrokeSet><Stroke>" + '<Point x="&a;" y="1" time="0"/>' * 10_000 + "</Stroke></StrokeSet>"
          "</WhiteboardCaptureSession>")
EXTERNAL = ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY z SYSTEM "/dev/zero">]><WhiteboardCaptureSession>'
            '<StrokeSet><Stroke><Point x="&z;" y="1" time="0"/></Stroke></StrokeSet></WhiteboardCaptureSession>')
ONE_LINE = xml_path("{tree}", "a01-000u", 1)
LINE_DAMAGE = {  # name -> (damage of a01-000u-01.xml, why); the other five lines are scored
    "xml-fifo": (fifo, "a line XML that is a FIFO"),
    "xml-dev-zero-link": (lambda p: link(p, "/dev/zero"), "a line XML linked to /dev/zero"),
    "xml-over-cap": (lambda p: sparse(p, LIMITS["stroke file"] + 1, line_xml().encode()), "a sparse XML past the cap"),
    "xml-malformed": (lambda p: write(p, "<WhiteboardCaptureSession><StrokeSet><Stroke"), "malformed XML"),
    "xml-billion-laughs": (lambda p: write(p, LAUGHS), "10^9 'ha's from nine nested entities"),
    "xml-quadratic-blowup": (lambda p: write(p, BLOWUP), "a 100 kB entity referenced 10,000 times: 1 GB"),
    "xml-external-entity": (lambda p: write(p, EXTERNAL), "an external entity on /dev/zero"),
    "xml-folder": (lambda p: (os.remove(p), os.mkdir(p)), "a folder named like a line XML"),
    "transcription-fifo": (lambda p: fifo(os.path.join(os.path.dirname(p).replace("lineStrokes", "ascii"),
                                                       "a01-000u.txt")), "the form's transcription is a FIFO"),
}
EVALUATE = ["evaluate", "{case}/syn", "--data", "{case}/data", "--split", "all"]


def _tree(damage=None):
    def setup(folder):
        copy_run("synthesis", folder, "syn")
        fake_tree(folder / "data")
        if damage:
            damage(xml_path(folder / "data", "a01-000u", 1))
    return setup


def _pack(tree, path, extra=()):
    with tarfile.open(path, "w:xz", preset=0) as tar:
        tar.add(tree, arcname="iamondb")
        for member, data in extra:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)


def _member(name, kind=tarfile.REGTYPE, data=b"", linkname="", size=None):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, len(data) if size is None else size
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 5  # /dev/zero
    return info, (data if kind == tarfile.REGTYPE else None)


def _archive(members=None, raw=None):
    """{case}/data.tar.xz: the fake tree plus ``members(case folder)``, or ``raw(case folder)`` as its bytes."""
    def setup(folder):
        copy_run("synthesis", folder, "syn")
        os.mkdir(folder / "outside")
        if raw:
            write(folder / "data.tar.xz", raw(folder))
            return
        _pack(fake_tree(folder / "tree"), folder / "data.tar.xz", members(folder) if members else ())
    return setup


def _good_archive_bytes(folder):
    _pack(fake_tree(folder / "tree"), folder / "whole.tar.xz")
    return open(folder / "whole.tar.xz", "rb").read()


A09 = _member("iamondb/ascii/a09/a09-000/a09-000u.txt", data=b"CSR:\n\nseven seas\n")  # a form for the member
DOT_DOT = ("../escape1.txt", "../../escape2.txt", "../../../escape3.txt", "iamondb/../../escape4.txt")
ESCAPES = {  # name -> (members, paths that must not exist after)
    "dot-dot": (lambda f: [_member(name, data=b"bad") for name in DOT_DOT],
                ("cache/iamondb/escape1.txt", "cache/escape2.txt", "escape3.txt", "cache/escape4.txt")),
    "absolute": (lambda f: [_member(str(f / "absolute.txt"), data=b"bad")], ("absolute.txt",)),
    "symlink-then-file": (lambda f: [_member("iamondb/lineStrokes/evil", tarfile.SYMTYPE, linkname=str(f / "outside")),
                                     _member("iamondb/lineStrokes/evil/pwned.txt", data=b"bad")],
                          ("outside/pwned.txt",)),
    "hardlink": (lambda f: [_member("iamondb/lineStrokes/hard.xml", tarfile.LNKTYPE, linkname="/etc/passwd")], ()),
    "device": (lambda f: [_member("iamondb/lineStrokes/zero.xml", tarfile.CHRTYPE)], ()),
    "fifo-member": (lambda f: [_member("iamondb/lineStrokes/a09/a09-000/a09-000u-01.xml", tarfile.FIFOTYPE), A09], ()),
    "40-MB-member": (lambda f: [_member("iamondb/lineStrokes/a09/a09-000/a09-000u-01.xml", data=b"\0" * (40 << 20)),
                                A09], ()),  # unpacked (40 MB written to the cache), then over the cap: skipped
}


def _only_regular_files(result, folder):
    """Nothing but folders and regular files in the cache: no link, device or FIFO was unpacked."""
    for dirpath, dirs, names in os.walk(os.path.join(folder, "cache")):
        for name in dirs + names:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or not (os.path.isdir(path) or os.path.isfile(path)):
                return f"the cache holds {path}, which is not a regular file or a folder"
    return None


def _cases():
    cases = [Case("evaluate-good-folder", EVALUATE, _tree(), expect=0, keep=("data",), why="the control: fakes work"),
             Case("evaluate-good-archive", [*EVALUATE[:3], "{case}/data.tar.xz", *EVALUATE[4:]], _archive(), expect=0,
                  keep=("data.tar.xz",), why="the control for archives")]
    for name, (damage, why) in LINE_DAMAGE.items():
        cases.append(Case(f"evaluate-{name}", EVALUATE, _tree(damage), expect=0, keep=("data",), why=f"{why}: skipped"))
    cases.append(Case("evaluate-every-xml-malformed", EVALUATE, _tree(_break_every_xml), keep=("data",),
                      why="no usable line"))
    for name, (members, absent) in ESCAPES.items():
        cases.append(Case(f"evaluate-archive-{name}", [*EVALUATE[:3], "{case}/data.tar.xz", *EVALUATE[4:]],
                          _archive(members), expect=0, absent=absent, keep=("outside", "data.tar.xz"),
                          check=_only_regular_files, seconds=10, why="the member is skipped; the tree is scored"))
    bad_archives = {"truncated": lambda f: _good_archive_bytes(f)[:300], "empty": lambda f: b"",
                    "not-an-archive": lambda f: b"hello, not a tar\n" * 50,
                    "zip": lambda f: b"PK\x03\x04" + b"\0" * 100, "xz-of-junk": lambda f: __import__("lzma").compress(
                        b"not a tar" * 1000)}
    for name, raw in bad_archives.items():
        for command in ("evaluate", "handwriting", "synthesis"):
            argv = [*EVALUATE[:3], "{case}/data.tar.xz", *EVALUATE[4:]] if command == "evaluate" else \
                ["train", command, "--data", "{case}/data.tar.xz", "--out", "{case}/out", "--max-steps", "1"]
            cases.append(Case(f"{command}-archive-{name}", argv, _archive(raw=raw), absent=("out",),
                              keep=("data.tar.xz", "syn"), check=_no_leftovers))
    specials = {"fifo": lambda f: fifo(f / "data"), "dev-zero-link": lambda f: link(f / "data", "/dev/zero"),
                "dangling-link": lambda f: link(f / "data", f / "gone")}
    for name, make in specials.items():
        for command in ("evaluate", "synthesis"):
            argv = EVALUATE if command == "evaluate" else ["train", command, "--data", "{case}/data", "--out",
                                                           "{case}/out", "--max-steps", "1"]
            cases.append(Case(f"{command}-data-{name}", argv, _then(make), absent=("out",), lacks=("does not exist",)
                              if name != "dangling-link" else ()))
    return cases


def _break_every_xml(one):
    root = one.split(os.sep + "lineStrokes" + os.sep)[0]
    for form, texts in FORMS.items():
        for n in range(1, len(texts) + 1):
            write(xml_path(root, form, n), "<not xml")


def _then(make):
    def setup(folder):
        copy_run("synthesis", folder, "syn")
        make(folder)
    return setup


def _no_leftovers(result, folder):
    """A failed unpacking leaves no half-made tree or .unpacking-* folder in the cache."""
    cache = os.path.join(folder, "cache", "iamondb")
    left = [n for n in os.listdir(cache) if n.startswith((".unpacking", "tree-"))] if os.path.isdir(cache) else []
    return f"the cache keeps {left}" if left else None


CASES = _cases()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return run_cases(CASES, tmp_path_factory.mktemp("iamondb"))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_hostile_handwriting_data_gets_one_error_line_or_is_skipped(case, outcomes):
    assert_contract(case, outcomes[case.id])
