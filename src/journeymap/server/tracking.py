"""The tracking API: Segment's HTTP Tracking API, so Segment and RudderStack SDKs work unchanged.

    POST /v1/track /v1/identify /v1/group /v1/page /v1/screen /v1/alias   one event
    POST /v1/batch                                                           {"batch": [...], "sentAt", "context"}

Each request is authenticated (write key as the Basic-auth user name, or "writeKey" in the body),
rate-limited per key, read as a stream with a size limit, checked structurally, turned into canonical
lines, and acknowledged with {"success": true} only once those lines are fsynced to the journal.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import zlib

from fastapi import APIRouter, Request
from fastapi.responses import Response

from journeymap.events.schema import MAX_EVENT_BYTES
from journeymap.ingest.journal import JournalUnavailable
from journeymap.ingest.segment import CALLS, MAX_BATCH_BYTES, MalformedBody, Rejected, parse_batch, parse_single, utc_now
from journeymap.server.ratelimit import retry_after

log = logging.getLogger("journeymap.server")
router = APIRouter()
_OK = b'{"success":true}'


CODES = {400: "invalid_request", 401: "unauthorized", 403: "origin_not_allowed", 413: "payload_too_large",
         429: "rate_limited", 500: "internal", 503: "unavailable"}
"""The `code` of each error status: Segment's shape, {"code", "message"}, which its SDKs read (they retry
429 and 5xx, and drop a batch answered 400, 401 or 413)."""

CORS_METHODS = "POST, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type"


def _json(status: int, body: dict, headers: dict | None = None) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, headers: dict | None = None, **extra) -> Response:
    """An error answer: Segment's {"code", "message"}, and journeymap's own {"success": false, "error"}."""
    return _json(status, {"success": False, "code": CODES[status], "message": message, "error": message, **extra}, headers)


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, read as it streams in; stops reading as soon as it passes `limit` bytes. A gzip body
    (`Content-Encoding: gzip`, which some SDKs send) is inflated as it arrives, and the limit applies
    to the inflated JSON."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise MalformedBody(f"unsupported Content-Encoding {encoding!r}; send identity or gzip")
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
    chunks, size = [], 0
    async for chunk in request.stream():
        if inflate is not None:
            try:
                chunk = inflate.decompress(chunk, limit + 1 - size)
            except zlib.error as exc:
                raise MalformedBody(f"bad gzip body: {exc}") from None
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    if inflate is not None and not inflate.eof:
        raise MalformedBody("bad gzip body: truncated")
    return b"".join(chunks)


def _basic_user(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.split(":", 1)[0]


async def _handle(request: Request, call: str) -> Response:
    state = request.app.state
    journal = state.journal
    if not journal.accepting:
        return _error(503, f"{journal.error or 'the journal is unavailable'}; retry", {"Retry-After": "1"})
    header_key = _basic_user(request)
    key = state.keys.verify(header_key, "write") if header_key else None
    if header_key is not None and key is None:
        return _error(401, "unknown or revoked write key")
    limit = MAX_BATCH_BYTES if call == "batch" else MAX_EVENT_BYTES
    try:
        body = await _read_body(request, limit)
    except _TooLarge:
        return _error(413, f"the body is over {limit // 1024} KB")
    except MalformedBody as exc:
        return _error(400, str(exc))
    received = utc_now()
    try:
        if call == "batch":
            payload, data, rejected = parse_batch(body, received)
        else:
            payload, data = parse_single(body, call, received)
            rejected = []
    except MalformedBody as exc:
        return _error(400, str(exc))
    except Rejected as exc:
        payload, data, rejected = None, b"", [exc.as_dict(0)]
    if key is None:
        body_key = _body_key(payload, body)
        key = state.keys.verify(body_key, "write")
        if key is None:
            return _error(401, "a write key is required: the Basic-auth user name, or writeKey in the body")
    if call != "batch" and rejected:
        return _error(400, f"the event is rejected: {rejected[0]['detail']}", rejected=rejected)
    events = data.count(b"\n")
    wait = state.limiter.take(key.key_id, max(events, 1))
    if wait:
        return _error(429, "rate limit exceeded for this write key", {"Retry-After": retry_after(wait)})
    if data:
        try:
            await journal.write_async(data)
        except JournalUnavailable as exc:
            return _error(503, str(exc), {"Retry-After": "1"})
    if rejected:
        return _json(200, {"success": True, "rejected": rejected})
    return Response(_OK, media_type="application/json")


def _body_key(payload, body: bytes) -> str | None:
    if isinstance(payload, dict):
        key = payload.get("writeKey")
        return key if isinstance(key, str) else None
    try:
        # A rejected single event still names its key.
        key = json.loads(body).get("writeKey")
    except (ValueError, AttributeError):
        return None
    return key if isinstance(key, str) else None


def _allowed_origin(request: Request) -> str | None:
    """The request's Origin when journeymap.yml's `server.cors_origins` lists it, else None."""
    origin = request.headers.get("origin")
    return origin if origin and origin.lower() in request.app.state.cors_origins else None


def _endpoint(call: str):
    async def endpoint(request: Request) -> Response:
        try:
            response = await _handle(request, call)
        except Exception:  # a bug: logged with its traceback; the client gets a retryable 500, never a trace
            log.exception("%s %s failed", request.method, request.url.path)
            response = _error(500, "internal error; the server log has the details (please report it)")
        origin = _allowed_origin(request)
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
        if request.app.state.cors_origins:
            response.headers["Vary"] = "Origin"
        return response

    endpoint.__name__ = f"v1_{call}"
    endpoint.__doc__ = f"Segment's {call} call." if call != "batch" else "Several calls of any type in one request."
    return endpoint


async def preflight(request: Request) -> Response:
    """CORS preflight: a browser asks whether a page of its Origin may POST here. Only the origins in
    journeymap.yml's `server.cors_origins` may; a request without an Origin is told what is allowed."""
    origin = request.headers.get("origin")
    if origin is None:
        return Response(status_code=204, headers={"Allow": CORS_METHODS})
    allowed = _allowed_origin(request)
    if allowed is None:
        return _error(403, f"origin {origin[:200]!r} may not call the tracking API from a browser: add it to "
                           "server.cors_origins in journeymap.yml", {"Vary": "Origin"})
    return Response(status_code=204, headers={
        "Access-Control-Allow-Origin": allowed,
        "Access-Control-Allow-Methods": CORS_METHODS,
        "Access-Control-Allow-Headers": CORS_HEADERS,
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    })


for _call in (*CALLS, "batch"):
    router.add_api_route(f"/v1/{_call}", _endpoint(_call), methods=["POST"])
    router.add_api_route(f"/v1/{_call}", preflight, methods=["OPTIONS"], include_in_schema=False,
                         name=f"v1_{_call}_preflight")
