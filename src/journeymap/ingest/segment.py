"""Segment's HTTP Tracking API payloads -> canonical event rows (one JSON line each, for the journal).

Only cheap structural checks run here, synchronously, so a client learns at once which events of a
batch were refused: not a JSON object, an unknown call type, a track call without an event name, no
userId and no anonymousId, an unparseable timestamp, an event over 32 KB, nesting deeper than
MAX_DEPTH or more than MAX_KEYS keys. Everything else (placeholder ids, absurd timestamps, long
fields, conflicts) is checked by the loader's SQL validation, as for files, and lands in dead letters.

>>> from datetime import datetime
>>> row = canonical({"type": "track", "event": "Signed Up", "userId": "u1", "messageId": "m1",
...                  "timestamp": "2024-05-01T10:00:00+02:00"}, received=datetime(2024, 5, 1, 9))
>>> row["event"], row["ts"], row["user_id"], row["source"]
('Signed Up', '2024-05-01 08:00:00', 'u1', 'product')
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from functools import lru_cache
from itertools import accumulate
from json.encoder import c_make_encoder, encode_basestring

from journeymap.events.reasons import Reason
from journeymap.events.schema import MAX_EVENT_BYTES

MAX_BATCH_BYTES = 500 * 1024
"""A request body to /v1/batch over this is refused with 413 (Segment's own limit)."""
MAX_DEPTH = 10
"""Nesting depth of an event: the event object is level 1, its properties level 2, and so on."""
MAX_KEYS = 1000
"""Object keys plus array items in one event, at every level together."""
MAX_BODY_DEPTH = 100
"""Nesting depth of a whole request body (a batch is level 1, its array level 2, an event level 3): a body
deeper than this is refused with 400 before it is parsed, as Python's parser recurses once per level.
Events deeper than MAX_DEPTH but within this are rejected one by one (`too_deep`)."""

TOO_DEEP = "too_deep"
TOO_MANY_KEYS = "too_many_keys"
"""Reasons only the tracking API gives (the loader never sees such events)."""

ARRIVAL_TIMED = "originalTimestamp"
"""The journal line's mark of an event whose `ts` depends on when the server received it (clock-skew
corrected, or no time given): a retry of it arrives later with the same content, and the loader compares
such a repeat without `ts` (Loader's `arrival_ts`). The key is one of `ts`'s aliases, after `ts` itself,
so a journal line read as a plain canonical file still takes its time from `ts`, and the mark never
becomes a property."""

CALLS = ("track", "identify", "group", "page", "screen", "alias")
EVENT_NAMES = {"identify": "identify", "group": "group", "page": "page_viewed", "screen": "screen_viewed", "alias": "alias"}
"""The canonical event name of each call other than track (track uses its `event`)."""

_WEB_LIBRARIES = ("analytics.js", "analytics-next", "analytics-browser", "rudder-analytics.js", "rudder-sdk-js")
_MOBILE_LIBRARIES = ("ios", "android", "react-native", "flutter", "swift", "kotlin", "xamarin")


def _no_default(value):
    raise TypeError(f"{type(value).__name__} is not JSON")


# The C encoder called directly: per event, json.dumps spends more time setting up than encoding.
_c_encode = c_make_encoder(None, _no_default, encode_basestring, None, ":", ",", False, False, False) if c_make_encoder else None
_py_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _dumps(row: dict) -> str:
    return "".join(_c_encode(row, 0)) if _c_encode is not None else _py_encode(row)


class Rejected(ValueError):
    """A structural problem with one event: the reason, the canonical field and a short detail."""

    def __init__(self, reason: str, field: str | None, detail: str):
        super().__init__(detail)
        self.reason, self.field, self.detail = reason, field, detail

    def as_dict(self, index: int | None = None) -> dict:
        d = {"reason": self.reason, "field": self.field, "detail": self.detail}
        return d if index is None else {"index": index, **d}


class MalformedBody(ValueError):
    """The request body is not JSON, or not the object the endpoint expects."""


def parse_time(value, field: str) -> datetime | None:
    """An ISO 8601 string as naive UTC; a string without an offset is UTC. None when absent.

    >>> parse_time("2015-02-23T22:28:55.111Z", "ts")
    datetime.datetime(2015, 2, 23, 22, 28, 55, 111000)
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise Rejected(Reason.BAD_TIMESTAMP.value, "ts", f"{field} is not an ISO 8601 string")
    dt = _parse_iso(value)
    if dt is None:
        raise Rejected(Reason.BAD_TIMESTAMP.value, "ts", f"{field}: cannot parse {value[:40]!r}")
    if dt is _OUT_OF_RANGE:
        raise Rejected(Reason.ABSURD_TIMESTAMP.value, "ts", f"{field}: {value[:40]!r} is out of range in UTC")
    return dt


_OUT_OF_RANGE = object()
"""What `_parse_iso` gives for a time that parses but has no UTC equivalent (0001-01-01T00:00:00+14:00)."""


@lru_cache(maxsize=4096)
def _parse_iso(value: str) -> datetime | object | None:
    """Cached: a batch's sentAt, and timestamps at the same millisecond, repeat."""
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if dt.tzinfo is not None:
        try:
            dt = dt.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # before year 1 or after year 9999 once the offset is applied
            return _OUT_OF_RANGE
    return dt


def event_time(ev: dict, received: datetime, batch_sent_at=None) -> datetime:
    """Segment's clock-skew correction: receivedAt - (sentAt - originalTimestamp) when the client sent
    both; else its `timestamp`; else the time the server received it.

    >>> event_time({"originalTimestamp": "2024-01-01T00:00:00Z", "sentAt": "2024-01-01T00:00:10Z"},
    ...            received=datetime(2024, 1, 1, 0, 5))
    datetime.datetime(2024, 1, 1, 0, 4, 50)
    """
    return _event_time(ev, received, batch_sent_at)[0]


def _event_time(ev: dict, received: datetime, batch_sent_at=None) -> tuple[datetime, bool]:
    """`event_time`, and whether it depends on the arrival time (skew-corrected, or receivedAt itself)."""
    original = parse_time(ev.get("originalTimestamp"), "originalTimestamp")
    sent = parse_time(ev.get("sentAt", batch_sent_at), "sentAt") if original is not None else None
    if original is not None and sent is not None:
        try:
            return received - (sent - original), True
        except OverflowError:
            raise Rejected(Reason.ABSURD_TIMESTAMP.value, "ts",
                           "the clock-skew correction receivedAt - (sentAt - originalTimestamp) is out of range") from None
    stamp = parse_time(ev.get("timestamp"), "timestamp")
    if stamp is not None:
        return stamp, False
    return (original, False) if original is not None else (received, True)


def _id(value, key: str, field: str) -> str | None:
    """An identifier as text: a string, or a whole or finite number (SDKs send numeric user ids); absent as
    None. Anything else is rejected rather than dropped: a messageId sent as an object would otherwise lose
    the event its de-duplication, and a userId sent as a list its person."""
    if isinstance(value, str):
        if "\x00" in value:
            raise Rejected(Reason.CONTROL_CHARACTER.value, field, f"{key} holds a NUL character")
        return value or None
    if value is None:
        return None
    if (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and math.isfinite(value)):
        return str(value)
    raise Rejected(Reason.BAD_JSON.value, field, f"{key} must be a string, not {_json_type(value)}")


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a non-finite number"
    return {dict: "an object", list: "an array"}.get(type(value), type(value).__name__)


def _object(ev: dict, key: str, field: str) -> dict | None:
    value = ev.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Rejected(Reason.BAD_JSON.value, field, f"{key} is not a JSON object")
    return value


def _shape(value, depth: int) -> int:
    """Keys and items below `value`; raises when nesting goes past MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise Rejected(TOO_DEEP, "properties", f"nested deeper than {MAX_DEPTH} levels")
    n = len(value)
    for v in (value.values() if type(value) is dict else value):
        if type(v) is dict or type(v) is list:
            n += _shape(v, depth + 1)
    return n


def _channel(ev: dict, context: dict | None, call: str) -> str | None:
    channel = ev.get("channel") or (context or {}).get("channel")
    if isinstance(channel, str) and channel:
        return channel
    library = (context or {}).get("library")
    name = library.get("name") if isinstance(library, dict) else None
    if isinstance(name, str):
        return _library_channel(name)
    return "mobile" if call == "screen" else None


@lru_cache(maxsize=256)
def _library_channel(name: str) -> str:
    low = name.lower()
    if any(w in low for w in _WEB_LIBRARIES):
        return "web"
    if any(m in low for m in _MOBILE_LIBRARIES):
        return "mobile"
    return "server"


def canonical(ev, call: str | None = None, received: datetime | None = None, batch_sent_at=None,
              batch_context: dict | None = None, source: str = "product") -> dict:
    """One Segment event as a canonical row (None fields left out). Raises Rejected."""
    if not isinstance(ev, dict):
        raise Rejected(Reason.BAD_JSON.value, None, "the event is not a JSON object")
    call = call or ev.get("type")
    if call not in CALLS:
        raise Rejected(Reason.INVALID_TYPE.value, "type", f"type must be one of {', '.join(CALLS)}")
    if _shape(ev, 1) > MAX_KEYS:
        raise Rejected(TOO_MANY_KEYS, "properties", f"more than {MAX_KEYS} keys and items")
    context = _object(ev, "context", "properties")
    if batch_context:
        context = {**batch_context, **(context or {})}
    user_id, anonymous_id = _id(ev.get("userId"), "userId", "user_id"), _id(ev.get("anonymousId"), "anonymousId", "anonymous_id")
    if user_id is None and anonymous_id is None:
        raise Rejected(Reason.MISSING_IDENTITY.value, "user_id", "neither userId nor anonymousId")
    properties = _object(ev, "properties", "properties")
    traits = _object(ev, "traits", "traits")
    row: dict = {"message_id": _id(ev.get("messageId"), "messageId", "message_id")}
    ts, by_arrival = _event_time(ev, received or datetime.now(UTC).replace(tzinfo=None), batch_sent_at)
    row["ts"] = ts.isoformat(sep=" ")
    if call == "track":
        name = ev.get("event")
        if not isinstance(name, str) or not name.strip():
            raise Rejected(Reason.MISSING_EVENT.value, "event", "a track call needs an event name")
        if "\x00" in name:
            raise Rejected(Reason.CONTROL_CHARACTER.value, "event", "the event name holds a NUL character")
        row["event"] = name
    else:
        row["event"] = EVENT_NAMES[call]
    row["type"], row["source"], row["channel"] = call, source, _channel(ev, context, call)
    row["user_id"], row["anonymous_id"] = user_id, anonymous_id
    ctx_traits = (context or {}).get("traits")
    ctx_traits = ctx_traits if isinstance(ctx_traits, dict) else {}
    if call == "identify" and ctx_traits:
        # RudderStack's SDKs send an identify's traits in context.traits; a top-level trait wins.
        traits = {**ctx_traits, **(traits or {})}
    email = (traits if call == "identify" and traits else ctx_traits).get("email")
    row["email"] = email if isinstance(email, str) else None
    if call == "alias":
        row["previous_id"] = _id(ev.get("previousId"), "previousId", "previous_id")
        if row["previous_id"] is None or user_id is None:
            raise Rejected(Reason.MISSING_IDENTITY.value, "previous_id", "an alias call needs userId and previousId")
    if call == "group":
        row["account_id"] = _id(ev.get("groupId"), "groupId", "account_id")
        if row["account_id"] is None:
            raise Rejected(Reason.MISSING_IDENTITY.value, "account_id", "a group call needs a groupId")
    else:
        row["account_id"] = _id((context or {}).get("groupId"), "context.groupId", "account_id")
    if call in ("page", "screen"):
        extra = {k: ev[k] for k in ("name", "category") if isinstance(ev.get(k), str)}
        properties = {**(properties or {}), **extra} if extra else properties
    if call in ("identify", "group"):
        row["traits"] = traits or None
    elif call != "alias":
        row["properties"] = properties or None
    if by_arrival:
        row[ARRIVAL_TIMED] = True
    return {k: v for k, v in row.items() if v is not None}


def line(row: dict) -> bytes:
    """The journal line of a canonical row; raises Rejected when the event is over 32 KB."""
    try:
        data = _dumps(row).encode() + b"\n"
    except UnicodeEncodeError:  # "\ud800" alone: JSON escapes it, but no UTF-8 text can hold it
        field = next((k for k, v in row.items() if not _encodes(v)), "properties")
        raise Rejected(Reason.BAD_JSON.value, field, "a string holds a lone surrogate (an unpaired \\ud800-\\udfff "
                                                     "escape), which is not Unicode text") from None
    except ValueError:  # NaN or Infinity: Python reads them, JSON has no such numbers
        raise Rejected(Reason.BAD_JSON.value, "properties", "NaN and Infinity are not JSON numbers") from None
    if len(data) > MAX_EVENT_BYTES:
        raise Rejected(Reason.OVERSIZED_EVENT.value, "properties", f"{len(data)} bytes; the limit is {MAX_EVENT_BYTES}")
    return data


def _encodes(value) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
        return True
    except (UnicodeEncodeError, ValueError):
        return False


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256)]


def body_depth(body: bytes, limit: int = MAX_BODY_DEPTH) -> int | None:
    """How deep the JSON in `body` nests arrays and objects, or None when it cannot pass `limit` (it has
    no more brackets than that). Read from the raw bytes, brackets inside strings left out, so a body is
    measured before a recursive parser sees it.

    >>> body_depth(b'{"batch": [{"properties": {"a": [1, 2]}}]}', limit=2), body_depth(b'[[["]]]]]"]]]', limit=2)
    (5, 3)
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return None
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _loads(body: bytes):
    depth = body_depth(body)
    if depth is not None and depth > MAX_BODY_DEPTH:
        raise MalformedBody(f"the JSON nests {depth} levels deep; the limit is {MAX_BODY_DEPTH}")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedBody(f"malformed JSON: {exc}") from None
    except RecursionError:  # not expected past the depth check; never a 500
        raise MalformedBody(f"the JSON nests deeper than {MAX_BODY_DEPTH} levels") from None


def parse_single(body: bytes, call: str, received: datetime, source: str = "product") -> tuple[dict, bytes]:
    """(the payload, its journal line) for /v1/<call>. Raises MalformedBody or Rejected."""
    ev = _loads(body)
    if not isinstance(ev, dict):
        raise MalformedBody("the body must be a JSON object")
    return ev, line(canonical(ev, call, received, source=source))


def parse_batch(body: bytes, received: datetime, source: str = "product") -> tuple[dict, bytes, list[dict]]:
    """(the payload, the journal lines of its good events, rejections by index) for /v1/batch."""
    payload = _loads(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
        raise MalformedBody('the body must be a JSON object with a "batch" array')
    sent_at = payload.get("sentAt")
    context = payload.get("context") if isinstance(payload.get("context"), dict) else None
    lines: list[bytes] = []
    rejected: list[dict] = []
    for i, ev in enumerate(payload["batch"]):
        try:
            lines.append(line(canonical(ev, None, received, sent_at, context, source)))
        except Rejected as r:
            rejected.append(r.as_dict(i))
    return payload, b"".join(lines), rejected


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
