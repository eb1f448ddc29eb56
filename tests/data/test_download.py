"""rnnlab.data.download against a loopback mirror: checksums, caching, and every way a fetch can fail.

Nothing here touches the network: each test serves files from a temporary folder on 127.0.0.1 (port 0),
points $RNNLAB_DATA_MIRROR at it and $RNNLAB_DATA at a temporary cache, and a guard turns any connection
to another address into a test failure. The references are the sha256 digests of DATASETS (checked
independently with hashlib) and the bytes of the files served.
"""

import functools
import hashlib
import http.server
import os
import shutil
import socket
import threading

import pytest

from conftest import shared_data
from rnnlab.cli import main
from rnnlab.data import download as dl
from rnnlab.errors import UserError
from rnnlab.tasks import wordlm

BUNDLED_SHAKESPEARE = os.path.join(os.path.dirname(dl.__file__), "tinyshakespeare.txt")
PTB_FILES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")
LOOPBACK = "127.0.0.1"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _files_under(folder) -> list[str]:
    """Every file below ``folder``, relative to it (partial downloads included)."""
    found = []
    for dirpath, _, names in os.walk(folder):
        found += [os.path.relpath(os.path.join(dirpath, n), folder) for n in names]
    return sorted(found)


def _partials(folder) -> list[str]:
    return [f for f in _files_under(folder) if f.endswith(".tmp")]


class _Truncating(http.server.SimpleHTTPRequestHandler):
    """Announces the whole file in Content-Length, sends its first half, then closes the connection."""

    def do_GET(self):
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        data = _read(path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True


class Mirror:
    """A loopback HTTP server for ``root`` (holding NAME/FILE) that records the paths it is asked for."""

    def __init__(self, root, handler=http.server.SimpleHTTPRequestHandler):
        self.root = root
        self.requests = []
        mirror = self

        class Recording(handler):
            def do_GET(self):
                mirror.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):  # keep the test output clean
                pass

        self.server = http.server.ThreadingHTTPServer((LOOPBACK, 0), functools.partial(Recording, directory=str(root)))
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def put(self, name: str, filename: str, data: bytes) -> None:
        os.makedirs(os.path.join(self.root, name), exist_ok=True)
        with open(os.path.join(self.root, name, filename), "wb") as f:
            f.write(data)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail the test on any connection to a non-loopback address, and keep proxies out of the way."""
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        assert address[0] == LOOPBACK, f"the test tried to reach {address}; only {LOOPBACK} is allowed"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", LOOPBACK)
    monkeypatch.setenv("NO_PROXY", LOOPBACK)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("RNNLAB_DATA", str(folder))
    monkeypatch.chdir(tmp_path)  # so resolve_data("ptb") cannot find a ./ptb folder by accident
    return folder


def _serve(tmp_path, monkeypatch, handler=http.server.SimpleHTTPRequestHandler):
    served = tmp_path / "served"
    served.mkdir(exist_ok=True)
    mirror = Mirror(served, handler)
    monkeypatch.setenv("RNNLAB_DATA_MIRROR", mirror.url)
    return mirror


@pytest.fixture
def mirror(tmp_path, monkeypatch, cache):
    m = _serve(tmp_path, monkeypatch)
    yield m
    m.stop()


@pytest.fixture
def truncating_mirror(tmp_path, monkeypatch, cache):
    m = _serve(tmp_path, monkeypatch, _Truncating)
    yield m
    m.stop()


@pytest.fixture
def shakespeare() -> bytes:
    data = _read(BUNDLED_SHAKESPEARE)
    assert _sha256(data) == dl.DATASETS["tinyshakespeare"]["input.txt"][1], "the bundled copy is the canonical file"
    return data


def _corrupt(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]


@pytest.fixture
def serve_ptb(mirror):
    for filename in PTB_FILES:
        mirror.put("ptb", filename, _read(shared_data("ptb", filename)))
    return mirror


# --- good downloads ------------------------------------------------------------------------------------------

def test_tinyshakespeare_lands_in_the_cache_with_the_published_checksum(mirror, cache, shakespeare):
    mirror.put("tinyshakespeare", "input.txt", shakespeare)

    folder = dl.download("tinyshakespeare")

    assert folder == str(cache / "tinyshakespeare")
    assert _files_under(cache) == [os.path.join("tinyshakespeare", "input.txt")]  # no temporary file left
    saved = _read(cache / "tinyshakespeare" / "input.txt")
    assert saved == shakespeare
    assert _sha256(saved) == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    assert mirror.requests == ["/tinyshakespeare/input.txt"]
    assert dl.is_downloaded("tinyshakespeare")


def test_second_download_uses_the_cache_without_the_server(mirror, cache, shakespeare):
    mirror.put("tinyshakespeare", "input.txt", shakespeare)
    dl.download("tinyshakespeare")
    path = cache / "tinyshakespeare" / "input.txt"
    mtime = os.stat(path).st_mtime_ns

    mirror.stop()  # any fetch would now be refused
    assert dl.download("tinyshakespeare") == str(cache / "tinyshakespeare")

    assert mirror.requests == ["/tinyshakespeare/input.txt"]
    assert os.stat(path).st_mtime_ns == mtime
    assert _read(path) == shakespeare


def test_ptb_download_then_resolve_data_uses_the_cache(serve_ptb, cache):
    folder = dl.download("ptb")

    assert folder == str(cache / "ptb")
    assert _files_under(cache) == sorted(os.path.join("ptb", f) for f in PTB_FILES)
    for filename in PTB_FILES:
        saved = _read(cache / "ptb" / filename)
        assert saved == _read(shared_data("ptb", filename))
        assert _sha256(saved) == dl.DATASETS["ptb"][filename][1]

    fetched = len(serve_ptb.requests)
    assert wordlm.resolve_data("ptb") == str(cache / "ptb")
    assert len(serve_ptb.requests) == fetched == 3  # resolve_data found it cached


def test_resolve_data_downloads_a_missing_dataset_once(serve_ptb, cache):
    assert wordlm.resolve_data("ptb") == str(cache / "ptb")
    assert sorted(serve_ptb.requests) == sorted(f"/ptb/{f}" for f in PTB_FILES)
    assert wordlm.resolve_data("ptb") == str(cache / "ptb")
    assert len(serve_ptb.requests) == 3


def test_cli_downloads_ptb_and_prints_the_folder(serve_ptb, cache, capsys):
    assert main(["data", "download", "ptb"]) == 0

    out, _ = capsys.readouterr()
    assert out == f"{cache / 'ptb'}\n"
    for filename in PTB_FILES:
        assert _sha256(_read(cache / "ptb" / filename)) == dl.DATASETS["ptb"][filename][1]
    assert _partials(cache) == []


def test_cli_dir_downloads_there_instead_of_the_cache(mirror, cache, tmp_path, shakespeare, capsys):
    mirror.put("tinyshakespeare", "input.txt", shakespeare)
    elsewhere = tmp_path / "elsewhere"

    assert main(["data", "download", "tinyshakespeare", "--dir", str(elsewhere)]) == 0

    out, _ = capsys.readouterr()
    assert out == f"{elsewhere / 'tinyshakespeare'}\n"
    assert _read(elsewhere / "tinyshakespeare" / "input.txt") == shakespeare
    assert _files_under(elsewhere) == [os.path.join("tinyshakespeare", "input.txt")]
    assert _files_under(cache) == []  # $RNNLAB_DATA untouched


def test_failed_multi_file_download_resumes_with_the_missing_files(serve_ptb, cache):
    valid = serve_ptb.root / "ptb" / "ptb.valid.txt"
    held_back = valid.with_suffix(".held")
    shutil.move(valid, held_back)

    with pytest.raises(UserError, match="could not download"):
        dl.download("ptb")
    assert _files_under(cache) == [os.path.join("ptb", "ptb.train.txt")]  # the good file is kept, no partials

    shutil.move(held_back, valid)
    serve_ptb.requests.clear()
    dl.download("ptb")
    assert serve_ptb.requests == ["/ptb/ptb.valid.txt", "/ptb/ptb.test.txt"]
    assert _files_under(cache) == sorted(os.path.join("ptb", f) for f in PTB_FILES)


# --- checksums -----------------------------------------------------------------------------------------------

def test_checksum_mismatch_saves_nothing(mirror, cache, shakespeare):
    bad = _corrupt(shakespeare)
    mirror.put("tinyshakespeare", "input.txt", bad)
    expected = dl.DATASETS["tinyshakespeare"]["input.txt"][1]

    with pytest.raises(UserError) as e:
        dl.download("tinyshakespeare")

    message = str(e.value)
    assert "checksum mismatch" in message
    assert expected in message and _sha256(bad) in message
    assert f"{mirror.url}/tinyshakespeare/input.txt" in message
    assert _files_under(cache) == []  # neither the final name nor a temporary file


def test_correct_cached_file_is_kept_when_the_server_has_a_bad_one(mirror, cache, shakespeare):
    mirror.put("tinyshakespeare", "input.txt", shakespeare)
    dl.download("tinyshakespeare")
    path = cache / "tinyshakespeare" / "input.txt"
    mtime = os.stat(path).st_mtime_ns
    mirror.put("tinyshakespeare", "input.txt", _corrupt(shakespeare))
    mirror.requests.clear()

    dl.download("tinyshakespeare")

    assert mirror.requests == []
    assert _read(path) == shakespeare
    assert os.stat(path).st_mtime_ns == mtime


def test_corrupted_cached_file_is_refetched_and_replaced(mirror, cache, shakespeare):
    path = cache / "tinyshakespeare" / "input.txt"
    path.parent.mkdir(parents=True)
    path.write_bytes(_corrupt(shakespeare))
    assert dl.is_downloaded("tinyshakespeare")  # present, though wrong: download() must still check it
    mirror.put("tinyshakespeare", "input.txt", shakespeare)

    dl.download("tinyshakespeare")

    assert mirror.requests == ["/tinyshakespeare/input.txt"]
    assert _read(path) == shakespeare
    assert _files_under(cache) == [os.path.join("tinyshakespeare", "input.txt")]


def test_corrupted_cached_file_is_not_replaced_by_another_bad_one(mirror, cache, shakespeare):
    path = cache / "tinyshakespeare" / "input.txt"
    path.parent.mkdir(parents=True)
    local = shakespeare[:1000]
    path.write_bytes(local)
    mirror.put("tinyshakespeare", "input.txt", _corrupt(shakespeare))

    with pytest.raises(UserError, match="checksum mismatch"):
        dl.download("tinyshakespeare")

    assert _read(path) == local
    assert _partials(cache) == []


# --- network failures ----------------------------------------------------------------------------------------

@pytest.fixture
def dead_mirror(cache, monkeypatch):
    """A loopback port that was bound and closed again: connecting to it is refused."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port = s.getsockname()[1]
    url = f"http://{LOOPBACK}:{port}"
    monkeypatch.setenv("RNNLAB_DATA_MIRROR", url)
    return url


def test_refused_connection_is_a_user_error(dead_mirror, cache):
    with pytest.raises(UserError) as e:
        dl.download("tinyshakespeare")

    message = str(e.value)
    assert message.startswith(f"could not download {dead_mirror}/tinyshakespeare/input.txt")
    assert "refused" in message.lower()
    assert "--data PATH" in message  # says how to get around it
    assert _files_under(cache) == []


def test_cli_refused_connection_prints_one_line_and_returns_2(dead_mirror, cache, capsys):
    assert main(["data", "download", "tinyshakespeare"]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("rnnlab: error: could not download ")
    assert "Traceback" not in err
    assert not os.path.exists(cache / "tinyshakespeare" / "input.txt")
    assert _partials(cache) == []


def test_http_404_is_a_user_error(mirror, cache):
    with pytest.raises(UserError) as e:
        dl.download("tinyshakespeare")  # the mirror holds nothing

    message = str(e.value)
    assert message.startswith(f"could not download {mirror.url}/tinyshakespeare/input.txt")
    assert "not found" in message.lower()  # the reason the server gave for its 404
    assert mirror.requests == ["/tinyshakespeare/input.txt"]
    assert _files_under(cache) == []


def test_server_dying_mid_transfer_saves_nothing(truncating_mirror, cache, shakespeare):
    truncating_mirror.put("tinyshakespeare", "input.txt", shakespeare)

    with pytest.raises(UserError) as e:
        dl.download("tinyshakespeare")

    assert f"{truncating_mirror.url}/tinyshakespeare/input.txt" in str(e.value)
    assert truncating_mirror.requests == ["/tinyshakespeare/input.txt"]
    assert _files_under(cache) == []  # neither the final name nor a temporary file


def test_truncated_transfer_is_reported_as_incomplete_not_as_a_different_file(truncating_mirror, cache, shakespeare):
    truncating_mirror.put("tinyshakespeare", "input.txt", shakespeare)

    with pytest.raises(UserError) as e:
        dl.download("tinyshakespeare")

    message = str(e.value)
    assert "checksum mismatch" not in message, message
    assert "could not download" in message
    assert str(len(shakespeare) // 2) in message and str(len(shakespeare)) in message  # got N of M bytes


# --- names ---------------------------------------------------------------------------------------------------

def test_unknown_dataset_lists_the_known_ones(mirror, cache):
    with pytest.raises(UserError) as e:
        dl.download("imagenet")

    message = str(e.value)
    assert "'imagenet'" in message
    for known in ("ptb", "wikitext-2", "tinyshakespeare"):
        assert known in message
    assert mirror.requests == []
    assert not os.path.exists(cache)


def test_a_mirror_that_is_not_a_url_is_one_clear_error(cache, monkeypatch):
    monkeypatch.setenv("RNNLAB_DATA_MIRROR", "notaurl")
    with pytest.raises(UserError, match="RNNLAB_DATA_MIRROR='notaurl' is not a URL"):
        dl.download("tinyshakespeare")


def test_a_malformed_mirror_url_is_one_clear_error(cache, monkeypatch):
    monkeypatch.setenv("RNNLAB_DATA_MIRROR", "http://[::1")
    with pytest.raises(UserError, match="not a valid URL"):
        dl.download("tinyshakespeare")
