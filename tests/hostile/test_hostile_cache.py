"""The download and IAM-OnDB caches in hostile states: ``$RNNLAB_DATA`` (or ``--dir``) a file, a FIFO or
/dev/zero; a cache entry that is a FIFO, a link to /dev/zero, a folder or wrong bytes where a file should be;
an IAM-OnDB ``.npz`` that is a FIFO, a folder, junk or a header claiming 10^12 rows; an unpacked tree that is
a file or holds a FIFO. Downloads come from a loopback mirror (the bundled tinyshakespeare, whose sha256 is
the dataset's), never from the network.

Expectations: a cache entry that is not a regular file with the right bytes is fetched again (exit 0, the
entry then right), as a wrong checksum always was; a cache rnnlab cannot write (a file or a folder in the
way) is one error line naming it; a damaged .npz is rebuilt (exit 0)."""

import glob
import hashlib
import http.server
import os
import threading
import warnings

import pytest

from hostile_harness import Case, assert_contract, case_id, run_cases
from hostile_inputs import copy_run, fake_tree, fifo, link, write, xml_path
import rnnlab.data.download as dl
from rnnlab.data.iamondb import load_iamondb

SHAKESPEARE = open(os.path.join(os.path.dirname(dl.__file__), "tinyshakespeare.txt"), "rb").read()
ENTRY = "cache/tinyshakespeare/input.txt"
DOWNLOAD = ["data", "download", "tinyshakespeare"]
EVALUATE = ["evaluate", "{case}/syn", "--data", "{case}/data", "--split", "all"]
EVALUATE_ARCHIVE = ["evaluate", "{case}/syn", "--data", "{case}/data.tar.xz", "--split", "all"]
NO_PROXY = {"no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1", "http_proxy": "", "HTTP_PROXY": "", "https_proxy": "",
            "HTTPS_PROXY": "", "all_proxy": "", "ALL_PROXY": ""}


def _refetched(result, folder):
    path = os.path.join(folder, ENTRY)
    if os.path.islink(path) or not os.path.isfile(path):
        return f"{path} is still not a regular file"
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return None if digest == dl.DATASETS["tinyshakespeare"]["input.txt"][1] else f"{path} holds other bytes"


def _entry(make):
    def setup(folder):
        os.makedirs(folder / "cache" / "tinyshakespeare")
        make(str(folder / ENTRY))
    return setup


def _cached(archive=False, damage=None):
    """The tiny synthesis run and a fake IAM-OnDB source already read into {case}/cache; ``damage(cache)``."""
    def setup(folder):
        copy_run("synthesis", folder, "syn")
        tree = fake_tree(folder / "data")
        source = tree
        if archive:
            import tarfile
            with tarfile.open(folder / "data.tar.xz", "w:xz", preset=0) as tar:
                tar.add(tree, arcname="iamondb")
            source = str(folder / "data.tar.xz")
        load_iamondb(source, cache_root=str(folder / "cache"))
        damage(str(folder / "cache" / "iamondb"))
    return setup


def _npz(make):
    return lambda cache: make(glob.glob(os.path.join(cache, "lines-*.npz"))[0])


def _tree(make):
    return lambda cache: make(glob.glob(os.path.join(cache, "tree-*"))[0])


def _replace_with_folder(path):
    os.remove(path)
    os.mkdir(path)


def _tree_to_file(path):
    import shutil
    shutil.rmtree(path)
    write(path, "not a tree\n")


def _huge_npz(path):
    """A .npz whose ``offsets`` header claims 10^12 rows of 3 float32 (12 TB) over 16 bytes of data."""
    import zipfile
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 3), }"
    header = header + " " * (118 - len(header)) + "\n"
    member = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 16
    with zipfile.ZipFile(path, "a") as z, warnings.catch_warnings():  # a second "offsets.npy": the last one counts
        warnings.simplefilter("ignore")  # zipfile's "Duplicate name": the point here
        z.writestr("offsets.npy", member)


def _cases():
    fetch = {"check": _refetched, "expect": 0, "seconds": 10}
    return [
        Case("download-good", DOWNLOAD, expect=0, check=_refetched, why="the control: the mirror serves it"),
        Case("download-entry-present", DOWNLOAD, _entry(lambda p: write(p, SHAKESPEARE)), expect=0, keep=(ENTRY,)),
        Case("download-entry-wrong-bytes", DOWNLOAD, _entry(lambda p: write(p, b"not shakespeare")), **fetch),
        Case("download-entry-fifo", DOWNLOAD, _entry(fifo), **fetch, why="a FIFO where the file goes: fetched again"),
        Case("download-entry-dev-zero-link", DOWNLOAD, _entry(lambda p: link(p, "/dev/zero")), **fetch),
        Case("download-entry-dangling-link", DOWNLOAD, _entry(lambda p: link(p, p + ".gone")), **fetch),
        Case("download-entry-folder", DOWNLOAD, _entry(os.mkdir), keep=(ENTRY,), why="a folder in the way"),
        Case("download-dataset-folder-is-file", DOWNLOAD, lambda f: write(f / "cache" / "tinyshakespeare", "x"),
             keep=("cache",)),
        Case("download-cache-is-file", DOWNLOAD, lambda f: write(f / "cachefile", "x"), keep=("cachefile",),
             env={"RNNLAB_DATA": "{case}/cachefile"}, has=("{case}/cachefile",)),
        Case("download-cache-is-fifo", DOWNLOAD, lambda f: fifo(f / "cachefifo"), keep=("cachefifo",),
             env={"RNNLAB_DATA": "{case}/cachefifo"}, has=("{case}/cachefifo",)),
        Case("download-cache-is-dev-zero", DOWNLOAD, env={"RNNLAB_DATA": "/dev/zero"}),
        Case("download-dir-is-file", [*DOWNLOAD, "--dir", "{case}/cachefile"], lambda f: write(f / "cachefile", "x"),
             keep=("cachefile",), has=("{case}/cachefile",)),
        Case("download-not-on-mirror", ["data", "download", "ptb"], seconds=10, why="the mirror answers 404"),
        Case("download-mirror-not-a-url", DOWNLOAD, env={"RNNLAB_DATA_MIRROR": "ftp:/nowhere"}),
        Case("wordlm-ptb-entry-fifo", ["train", "wordlm", "--data", "ptb", "--out", "{case}/out", "--max-steps", "1"],
             lambda f: [fifo(f / "cache" / "ptb" / f"ptb.{s}.txt") for s in ("train", "valid", "test")],
             absent=("out",), seconds=10, why="a cached split that is a FIFO: fetched again, and the mirror has none"),
        Case("iamondb-cache-is-file", EVALUATE, lambda f: (copy_run("synthesis", f, "syn"), fake_tree(f / "data"),
                                                           write(f / "cachefile", "x")),
             env={"RNNLAB_DATA": "{case}/cachefile"}, keep=("cachefile", "data"), has=("{case}/cachefile",)),
        Case("iamondb-npz-fifo", EVALUATE, _cached(damage=_npz(fifo)), expect=0, why="rebuilt"),
        Case("iamondb-npz-dev-zero-link", EVALUATE, _cached(damage=_npz(lambda p: link(p, "/dev/zero"))), expect=0),
        Case("iamondb-npz-junk", EVALUATE, _cached(damage=_npz(lambda p: write(p, os.urandom(500)))), expect=0),
        Case("iamondb-npz-huge-shape", EVALUATE, _cached(damage=_npz(_huge_npz)), expect=0, grow_mb=200,
             why="a header claiming 12 TB: refused without allocating, then rebuilt"),
        Case("iamondb-npz-folder", EVALUATE, _cached(damage=_npz(_replace_with_folder)), keep=("cache",),
             why="a folder where the .npz goes: one line naming it"),
        Case("iamondb-tree-is-file", EVALUATE_ARCHIVE, _cached(archive=True, damage=lambda c: (
            _tree(_tree_to_file)(c), [os.remove(p) for p in glob.glob(os.path.join(c, "lines-*.npz"))])),
             keep=("cache",), why="a file where the unpacked tree goes"),
        Case("iamondb-tree-holds-fifo", EVALUATE_ARCHIVE, _cached(archive=True, damage=lambda c: (
            _tree(lambda t: fifo(xml_path(os.path.join(t, "iamondb"), "a01-000u", 1)))(c),
            [os.remove(p) for p in glob.glob(os.path.join(c, "lines-*.npz"))])), expect=0,
             why="a poisoned tree: its FIFO line is skipped"),
    ]


CASES = _cases()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A loopback HTTP server holding tinyshakespeare/input.txt, for the whole module."""
    root = tmp_path_factory.mktemp("mirror")
    write(root / "tinyshakespeare" / "input.txt", SHAKESPEARE)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, mirror):
    return run_cases(CASES, tmp_path_factory.mktemp("cache"), env={"RNNLAB_DATA_MIRROR": mirror, **NO_PROXY})


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_hostile_cache_gets_one_error_line_or_is_repaired(case, outcomes):
    assert_contract(case, outcomes[case.id])
