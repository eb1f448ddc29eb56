"""``rnnlab serve``: the bundled handwriting model and any named runs behind a local web page and an HTTP
API, on Starlette and uvicorn.

    catalog.py   the served runs, by name (nothing else of the file system is reachable)
    fields.py    request bodies read field by field, one line per mistake
    jobs.py      generations in a bounded pool of threads, with a line, a time limit and cancelling
    app.py       the routes: the page, /api/models, /api/write, /api/write.svg, /api/sample, metrics
    page/        the page itself: HTML, JS and CSS, nothing loaded from elsewhere
"""

import errno
import ipaddress
import logging
import os
import socket

from ..errors import UserError

log = logging.getLogger(__name__)

EVERY_INTERFACE = ("0.0.0.0", "::", "")
WAITING_PER_WORKER = 4    # generations in line per worker before 429: a few seconds of waiting at most
TIME_LIMIT_SECONDS = 60.0  # one request's generation: the largest write (8 lines of 64 characters) takes ~5 s
SHUTDOWN_SECONDS = 5      # Ctrl-C: how long open streams get to finish before they are cut
BACKLOG = 128             # connections the kernel holds before the server accepts them (a common default)


def serve(models: list[str], host: str = "127.0.0.1", port: int = 8000, threads: int = 1, workers: int = 0,
          time_limit: float = TIME_LIMIT_SECONDS, device: str = "cpu") -> None:
    """Serve the bundled model and ``models`` (run folders, or ``NAME=PATH``) at ``host``:``port`` until
    Ctrl-C: ``workers`` generations at a time (0: one per CPU core), each on ``threads`` CPU threads."""
    import uvicorn

    from .app import create_app
    from .catalog import Catalog
    from .jobs import Jobs

    if not 0 <= port <= 65535:
        raise UserError(f"--port must be from 0 to 65535 (0: any free port), got {port}")
    if workers < 0 or not time_limit > 0:
        raise UserError(f"--workers must be >= 0 (0: one per core) and --time-limit > 0, got {workers} and {time_limit}")
    catalog = Catalog.open(models, device=device)
    if not workers:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    sock = _bind(host, port)
    jobs = Jobs(workers, WAITING_PER_WORKER * workers, time_limit)
    app = create_app(catalog, jobs, threads, local_only=_loopback(host))
    if host in EVERY_INTERFACE:
        log.warning("rnnlab: listening on every interface (--host %s): anyone who can reach this machine can use "
                    "the server; --host 127.0.0.1 keeps it to this one", host or "''")
    shown = f"[{host}]" if ":" in host else host or "0.0.0.0"
    print(f"rnnlab: serving {', '.join(catalog.served)} at http://{shown}:{sock.getsockname()[1]} (Ctrl-C stops)",
          flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=SHUTDOWN_SECONDS)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shut down cleanly, then raised the Ctrl-C again: stopping is the way out
        pass
    print("rnnlab: stopped", flush=True)


def _loopback(host: str) -> bool:
    """Whether ``host`` is this machine's loopback: then only requests addressed to a loopback name are
    answered (app.py); a LAN address or every interface answers any Host."""
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port``, or one line saying why not (in use, no such address)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UserError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        why = "is in use; choose another with --port (0: any free one)" if e.errno == errno.EADDRINUSE else f"cannot be used ({e.strerror})"
        raise UserError(f"port {port} on {host} {why}") from None
    sock.listen(BACKLOG)
    return sock
