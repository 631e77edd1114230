"""Validation of canonical events, written once as SQL so that files and the tracking API agree.

`validation_sql(relation)` selects every column of `relation` (which has the canonical fields as text,
`ts` parsed to TIMESTAMP and `ts_raw` as given) plus `_reason`, `_field` and `_detail`: NULL for a
valid event, else the first problem found, in the order listed in `CHECKS`.
"""

from __future__ import annotations

from journeymap.events.reasons import Reason
from journeymap.events.schema import EVENT_TYPES, MAX_EVENT_BYTES, MAX_FUTURE_SECONDS, MAX_ID_CHARS, MIN_TS, SOURCES


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _json_object_ok(col: str) -> str:
    return f"({col} IS NULL OR (json_valid({col}) AND json_type({col}) = 'OBJECT'))"


_SIZE = " + ".join(
    f"coalesce(strlen({c}), 0)"
    for c in ("message_id", "event", "user_id", "anonymous_id", "email", "previous_id", "account_id",
              "properties", "traits", "channel")
)

CHECKS: tuple[tuple[Reason, str, str, str], ...] = (
    # (reason, field, condition that makes the row invalid, detail expression)
    (Reason.MISSING_EVENT, "event", "event IS NULL", "'empty'"),
    (Reason.BAD_TIMESTAMP, "ts", "ts IS NULL", "coalesce('cannot parse ' || ts_raw, 'empty')"),
    (
        Reason.ABSURD_TIMESTAMP, "ts",
        f"ts < TIMESTAMP '{MIN_TS}' OR ts > now()::TIMESTAMP + INTERVAL {MAX_FUTURE_SECONDS} SECOND",
        "ts_raw",
    ),
    (
        Reason.MISSING_IDENTITY, "user_id",
        "user_id IS NULL AND anonymous_id IS NULL AND email IS NULL AND account_id IS NULL",
        "'no user_id, anonymous_id, email or account_id'",
    ),
    (Reason.INVALID_SOURCE, "source", f"source NOT IN {_in(SOURCES)}", "source"),
    (Reason.INVALID_TYPE, "type", f"type NOT IN {_in(EVENT_TYPES)}", "type"),
    (Reason.BAD_JSON, "properties", f"NOT {_json_object_ok('properties')}", "left(properties, 200)"),
    (Reason.BAD_JSON, "traits", f"NOT {_json_object_ok('traits')}", "left(traits, 200)"),
    *(
        (Reason.FIELD_TOO_LONG, col, f"length({col}) > {MAX_ID_CHARS}", f"length({col}) || ' characters'")
        for col in ("event", "message_id", "user_id", "anonymous_id", "email", "account_id")
    ),
    (Reason.OVERSIZED_EVENT, "properties", f"({_SIZE}) > {MAX_EVENT_BYTES}", f"({_SIZE}) || ' bytes'"),
)


def validation_sql(relation: str) -> str:
    reason = "CASE " + " ".join(f"WHEN {cond} THEN '{r.value}'" for r, _, cond, _ in CHECKS) + " END"
    field = "CASE " + " ".join(f"WHEN {cond} THEN '{f}'" for _, f, cond, _ in CHECKS) + " END"
    detail = "CASE " + " ".join(f"WHEN {cond} THEN {d}" for _, _, cond, d in CHECKS) + " END"
    return f"SELECT *, {reason} AS _reason, {field} AS _field, {detail} AS _detail FROM {relation}"
