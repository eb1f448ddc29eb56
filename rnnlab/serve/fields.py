"""Reading a request of the API: its JSON body, then each field, with one line naming the field, what
it must be and what was sent (``BadRequest``, answered as a 4xx ``{"error": ...}``)."""

import json

from starlette.requests import Request

MAX_BODY_BYTES = 1 << 20  # a drawn line of MAX_DRAWN_POINTS points is about 400 kB of JSON


class BadRequest(Exception):
    """A request that cannot be served as sent: ``status`` and one line."""

    def __init__(self, message: str, status: int = 400, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


async def body(request: Request, fields: dict) -> dict:
    """The JSON object of a POST, every key one of ``fields`` (name -> default), defaults filled in."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadRequest("send the body as JSON with Content-Type: application/json", 415)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(f"the body has {int(declared):,} bytes; at most {MAX_BODY_BYTES:,} are read", 413)
    raw = bytearray()
    async for piece in request.stream():
        raw += piece
        if len(raw) > MAX_BODY_BYTES:
            raise BadRequest(f"the body is over {MAX_BODY_BYTES:,} bytes; send less", 413)
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        reason = e.msg if isinstance(e, json.JSONDecodeError) else "not UTF-8 JSON" if isinstance(
            e, UnicodeDecodeError) else str(e) or "too deeply nested"
        raise BadRequest(f"the body is not valid JSON ({reason})") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the body must be a JSON object {{...}}, got {type(data).__name__}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; the fields are {', '.join(fields)}")
    return {**fields, **data}


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def number(body: dict, key: str, low: float, high: float) -> float:
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise BadRequest(f"{key} must be a number from {low:g} to {high:g}, got {shown(value)}")
    return float(value)


def integer(body: dict, key: str, low: int, high: int, none: bool = False) -> int | None:
    value = body[key]
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        also = " or null" if none else ""
        raise BadRequest(f"{key} must be a whole number from {low} to {high}{also}, got {shown(value)}")
    return value


def string(body: dict, key: str, limit: int) -> str:
    value = body[key]
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string, got {shown(value)}")
    if len(value) > limit:
        raise BadRequest(f"{key} has {len(value):,} characters; at most {limit:,} are accepted")
    return value


def shown(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
