"""The web app of ``rnnlab serve``: the page at ``/`` and the HTTP API under ``/api/`` (README, "The web
page"), a thin layer over ``Run.write_stream``, ``Run.stream`` and the run folder's metrics.

Every request body is checked here, field by field, before any work: a bad one gets a 4xx with
``{"error": "one line"}``, the line the CLI would print. Generations run in ``jobs.Jobs``' threads.
"""

from collections.abc import Callable
from contextlib import asynccontextmanager
import json
import logging
import re

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..draw import STROKE_WIDTH_FRACTION
from ..errors import UserError
from ..ink import from_screen
from ..tasks.recognize import MAX_LM_WEIGHT
from ..writing import MAX_BIAS, Chunk, Handwriting, split_lines
from .catalog import Catalog, Served
from . import fields
from .fields import BadRequest
from .jobs import Busy, ClientGone, Jobs, TimeLimit

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 600          # the text of one write: 8 lines of 64 characters and their newlines
MAX_LINES = 8                 # lines of one write, sampled as one batch
MAX_SAMPLE_LENGTH = 5000      # tokens of one text sample: a second or two on one CPU core
MAX_DRAWN_POINTS = 20_000     # points of a drawn style or line to read: a minute of a mouse's 300 Hz
MAX_READ_BEAM = 64            # prefixes of a read's beam search: past this it takes seconds, for nothing
RETRY_AFTER_SECONDS = 1       # what a busy server tells the client to wait
POINT_DECIMALS = 2            # offsets are data units (IAM sensor units): 1/100 of one is below any pen
ATTENTION_DECIMALS = 4
COLOR = re.compile(r"#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|[a-zA-Z]{1,20}")  # nothing else reaches the SVG
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
HOST_PORT = re.compile(r"(\[[^\]]*\]|[^:]*)(?::\d+)?")  # Host: name or [v6] and an optional port
PAGE = __file__.rsplit("/", 1)[0] + "/page"


def create_app(catalog: Catalog, jobs: Jobs, threads: int = 1, local_only: bool = True) -> Starlette:
    """The app serving ``catalog``'s runs, generating in ``jobs`` with ``threads`` CPU threads each;
    ``local_only``: answer only requests addressed to this machine by a loopback name (module docstring)."""
    routes = [
        Route("/", lambda request: FileResponse(f"{PAGE}/index.html", headers=SECURITY_HEADERS)),
        Mount("/static", StaticFiles(directory=PAGE), name="static"),
        Route("/api/models", _handler(lambda request: _models(catalog, jobs))),
        Route("/api/write", _handler(lambda r: _write(r, catalog, jobs, threads)), methods=["POST"]),
        Route("/api/write.svg", _handler(lambda r: _write_svg(r, catalog, jobs, threads)), methods=["POST"]),
        Route("/api/sample", _handler(lambda r: _sample(r, catalog, jobs, threads)), methods=["POST"]),
        Route("/api/read", _handler(lambda r: _read(r, catalog, jobs, threads)), methods=["POST"]),
        Route("/api/runs/{name:path}/metrics", _handler(lambda r: _metrics(r, catalog))),
    ]
    middleware = [Middleware(_LoopbackHostsOnly)] if local_only else []
    @asynccontextmanager
    async def lifespan(app):
        yield
        jobs.close()

    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                     exception_handlers={HTTPException: _http_error, Exception: _crash})


LIMITS = {"text_chars": MAX_TEXT_CHARS, "lines": MAX_LINES, "length": MAX_SAMPLE_LENGTH,
          "drawn_points": MAX_DRAWN_POINTS, "max_bias": MAX_BIAS}


async def _models(catalog: Catalog, jobs: Jobs) -> Response:
    """GET /api/models: the served runs, the limits of a request and how busy the server is."""
    return JSONResponse({**catalog.describe(), "limits": LIMITS, "load": jobs.load()})


def _handler(endpoint: Callable) -> Callable:
    """``endpoint`` with every error a client can cause as a 4xx ``{"error": ...}`` (and 429/503 when busy)."""

    async def handle(request: Request) -> Response:
        try:
            return await endpoint(request)
        except BadRequest as e:
            return _error(str(e), e.status, e.headers)
        except UserError as e:
            return _error(str(e), 400)
        except Busy as e:
            return _error(str(e), 429, {"retry-after": str(RETRY_AFTER_SECONDS)})
        except TimeLimit as e:
            return _error(str(e), 503, {"retry-after": str(RETRY_AFTER_SECONDS)})
        except (ClientGone, ClientDisconnect):
            return Response(status_code=499)  # nobody reads it: the client has gone

    return handle


def _error(message: str, status: int, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message.splitlines()[0] if message else "error"}, status, headers)


async def _http_error(request: Request, e: HTTPException) -> JSONResponse:
    """Starlette's own 404 and 405 as the API's one-line JSON."""
    message = {404: f"no such page: {request.url.path}", 405: f"{request.method} is not allowed on "
               f"{request.url.path}"}.get(e.status_code, str(e.detail))
    return _error(message, e.status_code, dict(e.headers or {}))


async def _crash(request: Request, e: Exception) -> JSONResponse:
    """A bug in rnnlab (logged with its traceback): a 500 whose body says so and nothing more."""
    log.error("error serving %s %s", request.method, request.url.path, exc_info=e)
    return _error("internal error in rnnlab (the server's log has the traceback); please report it", 500)


def _served(catalog: Catalog, body: dict, kind: str) -> Served:
    name = body["model"]
    if name is None:
        return catalog.default(kind)
    if not isinstance(name, str):
        raise BadRequest(f"model must be the name of a served model, got {fields.shown(name)}")
    return catalog.get(name, kind)


# ---------------------------------------------------------------------------------------- endpoints

WRITE_FIELDS = {"model": None, "text": None, "bias": 1.5, "style": None, "strokes": None, "seed": None,
                "attention": False}
SVG_FIELDS = {**WRITE_FIELDS, "color": "black", "stroke_width": 1.0}
SAMPLE_FIELDS = {"model": None, "prime": "", "length": 300, "temperature": 1.0, "top_k": 0, "top_p": 1.0,
                 "seed": None}
READ_FIELDS = {"model": None, "points": None, "beam": None, "lm_weight": None}
SEED_LIMIT = 2**63 - 1


def _write_args(body: dict, catalog: Catalog) -> tuple[Served, dict]:
    """The model and ``Run.write_stream``'s arguments of a write request."""
    served = _served(catalog, body, "handwriting")
    text = fields.string(body, "text", MAX_TEXT_CHARS) if body["text"] is not None else None
    if text is None:
        raise BadRequest("text is missing: give the text to write, e.g. {\"text\": \"Hello\"}")
    lines = split_lines(text)
    if len(lines) > MAX_LINES:
        raise BadRequest(f"the text has {len(lines)} lines; at most {MAX_LINES} are written at once")
    if body["style"] is not None and body["strokes"] is not None:
        raise BadRequest("give style (one of the model's styles) or strokes (a drawn hand), not both")
    style = fields.integer(body, "style", 0, 10**6, none=True)
    if body["strokes"] is not None:
        style = _drawn_style(body["strokes"], served)
    if not isinstance(body["attention"], bool):
        raise BadRequest(f"attention must be true or false, got {fields.shown(body['attention'])}")
    return served, {"text": text, "bias": fields.number(body, "bias", 0.0, MAX_BIAS), "style": style,
                    "seed": fields.integer(body, "seed", 0, SEED_LIMIT, none=True)}


def _drawn_style(strokes, served: Served):
    if not isinstance(strokes, dict) or set(strokes) != {"text", "points"}:
        raise BadRequest("strokes must be {\"text\": what the drawing says, \"points\": [[x, y, end_of_stroke], "
                         "...]} (screen coordinates, y down)")
    if not isinstance(strokes["points"], list) or len(strokes["points"]) > MAX_DRAWN_POINTS:
        raise BadRequest(f"strokes.points must be a list of at most {MAX_DRAWN_POINTS:,} points")
    text = fields.string(strokes, "text", MAX_TEXT_CHARS)
    return served.run.drawn_style(strokes["points"], text)


async def _write(request: Request, catalog: Catalog, jobs: Jobs, threads: int) -> Response:
    """POST /api/write: the points as they are sampled, one JSON line per chunk, then the summary."""
    body = await fields.body(request, WRITE_FIELDS)
    served, args = _write_args(body, catalog)
    job = jobs.start(lambda: served.run.write_stream(**args, threads=threads))
    ok, first = await job.first(request.is_disconnected)
    render = lambda pieces: "".join(_write_record(piece, body["attention"]) for piece in pieces)  # noqa: E731
    failed = lambda error: json.dumps({"error": str(error)}) + "\n"  # noqa: E731
    return _Generation(job, _streamed(job, ok, first, render, failed), media_type="application/x-ndjson")


def _write_record(piece, attention: bool) -> str:
    if isinstance(piece, Chunk):
        return json.dumps({"line": piece.line, "points": _rounded(piece.offsets, POINT_DECIMALS)}) + "\n"
    assert isinstance(piece, Handwriting), piece
    record = {"done": True, "texts": piece.texts, "stopped": piece.stopped}
    if attention:
        record["attention"] = [_rounded(w, ATTENTION_DECIMALS) for w in piece.attention]
    return json.dumps(record) + "\n"


def _rounded(array: np.ndarray, decimals: int) -> list:
    """float32 values as the short decimals they stand for (0.01, not 0.009999999776)."""
    return array.astype(np.float64).round(decimals).tolist()


async def _write_svg(request: Request, catalog: Catalog, jobs: Jobs, threads: int) -> Response:
    """POST /api/write.svg: the whole page of writing as one SVG document."""
    body = await fields.body(request, SVG_FIELDS)
    served, args = _write_args(body, catalog)
    color = body["color"]
    if not isinstance(color, str) or not COLOR.fullmatch(color):
        raise BadRequest(f"color must be #rgb, #rrggbb or a colour name, got {fields.shown(color)}")
    width = fields.number(body, "stroke_width", 0.05, 20.0)
    job = jobs.start(lambda: served.run.write_stream(**args, threads=threads))
    try:
        _, piece = await job.first(request.is_disconnected)
        while not isinstance(piece, Handwriting):  # the chunks, then the whole writing
            piece = (await job.next_batch())[0][-1]
    finally:
        job.cancel()
    pen = width * STROKE_WIDTH_FRACTION * piece.page()[1]  # a multiple of the default pen of the page
    return Response(piece.to_svg(pen, color), media_type="image/svg+xml")


async def _sample(request: Request, catalog: Catalog, jobs: Jobs, threads: int) -> Response:
    """POST /api/sample: the text as it is sampled (the prime first)."""
    body = await fields.body(request, SAMPLE_FIELDS)
    served = _served(catalog, body, "text")
    args = {"prime": fields.string(body, "prime", MAX_TEXT_CHARS), "length": fields.integer(body, "length", 0, MAX_SAMPLE_LENGTH),
            "temperature": fields.number(body, "temperature", 0.0, 100.0), "top_k": fields.integer(body, "top_k", 0, 10**9),
            "top_p": fields.number(body, "top_p", 0.0, 1.0), "seed": fields.integer(body, "seed", 0, SEED_LIMIT, none=True)}
    job = jobs.start(lambda: served.run.stream(**args, threads=threads))
    ok, first = await job.first(request.is_disconnected)
    return _Generation(job, _streamed(job, ok, first, "".join, lambda error: ""), media_type="text/plain; charset=utf-8")


async def _read(request: Request, catalog: Catalog, jobs: Jobs, threads: int) -> Response:
    """POST /api/read: the text of a line drawn on the screen (points in screen coordinates, y down)."""
    body = await fields.body(request, READ_FIELDS)
    served = _served(catalog, body, "reads")
    points = body["points"]
    if not isinstance(points, list) or not 0 < len(points) <= MAX_DRAWN_POINTS:
        raise BadRequest(f"points must be a list of 1 to {MAX_DRAWN_POINTS:,} points [x, y, end_of_stroke] "
                         f"(screen coordinates, y down)")
    offsets = from_screen(points)
    beam = fields.integer(body, "beam", 0, MAX_READ_BEAM, none=True)
    weight = None if body["lm_weight"] is None else fields.number(body, "lm_weight", 0.0, MAX_LM_WEIGHT)
    job = jobs.start(lambda: iter([served.run.read(offsets, beam, weight, threads)]))
    try:
        _, text = await job.first(request.is_disconnected)
    finally:
        job.cancel()
    return JSONResponse({"text": text})


async def _streamed(job, ok: bool, first, render: Callable, failed: Callable):
    """The body of a streamed generation: ``first`` (when ``ok``) and the pieces after it, each batch that
    has arrived rendered as one write; an error after the first piece (the time limit) ends it with
    ``failed(error)``, since its status has been sent."""
    pending, over = ([first], False) if ok else ([], True)
    while True:
        yield render(pending)
        if over:
            return
        try:
            pending, over = await job.next_batch()
        except (UserError, TimeLimit) as e:
            log.warning("a generation stopped: %s", e)
            yield failed(e)
            return


async def _metrics(request: Request, catalog: Catalog) -> Response:
    """GET /api/runs/{name}/metrics?since=N: the run's metrics records after the first N."""
    since = request.query_params.get("since", "0")
    if not since.isascii() or not since.isdigit() or len(since) > 12:
        raise BadRequest(f"since must be a record count (0 or more), got {since[:20]!r}")
    records, damaged = catalog.metrics(request.path_params["name"]).folder.read_metrics()
    return JSONResponse({"records": records[int(since):], "next": len(records), "damaged": damaged})


class _LoopbackHostsOnly:
    """Refuse a request whose Host is not a loopback name: a web page elsewhere that points its own domain
    at 127.0.0.1 (DNS rebinding) could otherwise read this server's answers."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            name = HOST_PORT.fullmatch(host)
            if not name or name.group(1).lower() not in LOOPBACK_NAMES:
                await _error(f"this server answers requests to {', '.join(LOOPBACK_NAMES)} only (Host: {host[:60]!r})",
                             421)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Generation(StreamingResponse):
    """A streamed generation that is cancelled however the response ends: done, failed, or the client gone."""

    def __init__(self, job, content, media_type: str):
        super().__init__(content, media_type=media_type, headers={"cache-control": "no-store"})
        self.job = job

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.cancel()
