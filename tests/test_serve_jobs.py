"""rnnlab serve under load and faults, on a real uvicorn server on loopback: a full line of generations gets
429 with Retry-After, a generation past its time limit ends with a one-line error (503 when nothing was sent
yet), a client that goes away stops its generation, and the ``rnnlab serve`` command starts, prints its
URL, serves and stops on Ctrl-C; its bad flags are one line and exit status 2."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx2
import pytest
import uvicorn

import rnnlab
from rnnlab.serve.app import create_app
from rnnlab.serve.catalog import Catalog
from rnnlab.serve.jobs import Jobs
from rnnlab.writing import Chunk

from conftest import fails

JSON = {"content-type": "application/json"}


class SlowPen:
    """Stands in for ``Run.write_stream``: a chunk every ``pause`` seconds, for ever (or ``count`` times), and
    a record of how many it gave and whether it was closed."""

    def __init__(self, pause: float, count: int = 10**9):
        self.pause, self.count, self.given, self.closed = pause, count, 0, threading.Event()

    def __call__(self, **kwargs):
        try:
            for _ in range(self.count):
                time.sleep(self.pause)
                self.given += 1
                yield Chunk(0, __import__("numpy").zeros((1, 3), "float32"))
            yield rnnlab.load("builtin:handwriting").write("a", seed=1)
        finally:
            self.closed.set()


@pytest.fixture
def server(monkeypatch):
    """A real uvicorn server on a free loopback port, in a thread, with one worker and one place in line;
    ``start(pen, time_limit)`` serves ``pen`` as the bundled model's write_stream. Yields ``start``."""
    servers = []

    def start(pen, time_limit=60.0):
        catalog = Catalog.open([])
        monkeypatch.setattr(catalog.get("builtin:handwriting").run, "write_stream", pen)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        app = create_app(catalog, Jobs(1, 1, time_limit))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx2.get(url + "/api/models", timeout=5)
                break
            except httpx2.TransportError:
                time.sleep(0.05)
        servers.append((server, thread))
        return url

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def pending(url) -> int:
    return httpx2.get(url + "/api/models", timeout=10).json()["load"]["pending"]


def wait_until(condition, seconds=10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_full_line_gets_429_with_retry_after_and_the_server_recovers(server):
    pen = SlowPen(0.02, count=50)  # a second a generation
    url = server(pen)
    waiting = {}
    with httpx2.Client(timeout=30) as client:
        with client.stream("POST", url + "/api/write", json={"text": "hi"}) as first:  # the worker
            lines = first.iter_lines()  # kept: an iterator dropped closes the response, and the server stops
            next(lines)
            second = threading.Thread(target=lambda: waiting.update(
                response=httpx2.post(url + "/api/write", json={"text": "hi"}, timeout=60)))
            second.start()  # the place in line
            assert wait_until(lambda: pending(url) == 2)
            refused = httpx2.post(url + "/api/write", json={"text": "hi"}, timeout=30)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
            assert "busy" in refused.json()["error"]
            start = time.monotonic()  # every worker busy, the line full: the page and the listing still answer
            assert httpx2.get(url + "/", timeout=10).status_code == 200 and pending(url) == 2
            assert time.monotonic() - start < 2.0
    second.join(60)
    assert waiting["response"].status_code == 200  # served once the first was done
    assert json.loads(waiting["response"].text.splitlines()[-1])["done"] is True
    assert wait_until(lambda: pending(url) == 0)


def test_a_client_that_goes_away_stops_its_generation(server):
    pen = SlowPen(0.01)
    url = server(pen)
    with httpx2.Client(timeout=30) as client:
        with client.stream("POST", url + "/api/write", json={"text": "hi"}) as response:
            lines = response.iter_lines()
            assert json.loads(next(lines))["line"] == 0
    assert pen.closed.wait(5)  # the generator was closed, in its own thread
    given = pen.given
    time.sleep(0.3)
    assert pen.given == given and wait_until(lambda: pending(url) == 0)


def test_a_generation_past_its_time_limit(server):
    url = server(SlowPen(0.05), time_limit=0.5)
    response = httpx2.post(url + "/api/write", json={"text": "hi"}, timeout=30)
    assert response.status_code == 200
    last = json.loads(response.text.splitlines()[-1])
    assert list(last) == ["error"] and "time limit of 0.5 s" in last["error"]
    svg = httpx2.post(url + "/api/write.svg", json={"text": "hi"}, timeout=30)
    assert svg.status_code == 503 and "time limit" in svg.json()["error"] and svg.headers["retry-after"]
    assert wait_until(lambda: pending(url) == 0)


def test_the_command_serves_prints_its_url_and_stops_on_ctrl_c(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab", "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("rnnlab: serving builtin:handwriting, builtin:recognizer at http://127.0.0.1:"), line
        url = line.split(" at ")[1].split()[0]
        written = httpx2.post(url + "/api/write", json={"text": "served", "seed": 1}, timeout=60)
        expected = rnnlab.load("builtin:handwriting").write("served", seed=1)
        assert json.loads(written.text.splitlines()[-1])["stopped"] == expected.stopped
        assert httpx2.get(url + "/", timeout=10).text.lstrip().lower().startswith("<!doctype html>")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()


def test_every_interface_is_warned_about(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "rnnlab", "serve", "--port", "0", "--host", "0.0.0.0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert "at http://0.0.0.0:" in proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        assert "listening on every interface" in proc.stderr.read()
    finally:
        proc.kill()


def test_bad_serve_flags_are_one_line(capsys, tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        fails(capsys, ["serve", "--port", str(taken.getsockname()[1])], "is in use", "--port")
    finally:
        taken.close()
    fails(capsys, ["serve", "--port", "70000"], "--port must be from 0 to 65535")
    fails(capsys, ["serve", "--model", str(tmp_path / "none")], "none")
    fails(capsys, ["serve", "--model", "builtin:handwriting"], "the name 'builtin:handwriting' is taken")
    fails(capsys, ["serve", "--model", "bad name=" + str(tmp_path)], "cannot name a model in a request")
    fails(capsys, ["serve", "--host", "no.such.host.invalid"], "--host no.such.host.invalid")
    fails(capsys, ["serve", "--threads", "0"], "--threads must be between 1")
    fails(capsys, ["serve", "--time-limit", "0"], "--time-limit > 0")


def test_only_a_loopback_address_limits_the_hosts_it_answers():
    from rnnlab.serve import _loopback

    assert all(map(_loopback, ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"]))
    assert not any(map(_loopback, ["192.168.1.5", "0.0.0.0", "::", "", "example.com"]))
