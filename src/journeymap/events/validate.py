"""Validation of canonical events, written once as SQL so that files and the tracking API agree.

`validation_sql(relation)` selects every column of `relation` (which has the canonical fields as text,
`ts` parsed to TIMESTAMP and `ts_raw` as given) plus `_check`: NULL for a valid event, else the
index in `CHECKS` of the first problem found.
"""

from __future__ import annotations

from journeymap.events.reasons import Reason
from journeymap.events.schema import EVENT_TYPES, MAX_EVENT_BYTES, MAX_FUTURE_SECONDS, MAX_ID_CHARS, MIN_TS, SOURCES


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def is_json_object(col: str) -> str:
    """SQL: the text is a JSON object. No json_type here: DuckDB may evaluate both sides of an AND,
    and json_type raises on invalid JSON."""
    return f"(json_valid({col}) AND starts_with(ltrim({col}), '{{'))"


def _json_object_ok(col: str) -> str:
    return f"({col} IS NULL OR {is_json_object(col)})"


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
        "coalesce(ts_raw, ts::VARCHAR)",
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
    *(
        (Reason.CONTROL_CHARACTER, col, f"contains({col}, chr(0))", f"'a NUL character at position ' || strpos({col}, chr(0))")
        for col in ("event", "message_id", "user_id", "anonymous_id", "email", "account_id", "previous_id")
    ),
    (Reason.OVERSIZED_EVENT, "properties", f"({_SIZE}) > {MAX_EVENT_BYTES}", f"({_SIZE}) || ' bytes'"),
)


def validation_sql(relation: str) -> str:
    """Every column of `relation` plus `_check`: NULL when valid, else the index of the first failed check.

    Only the index is computed for every row; `rejection_columns` turns it into reason, field and
    detail for the (few) rejected rows."""
    check = "CASE " + " ".join(f"WHEN {cond} THEN {i}" for i, (_, _, cond, _) in enumerate(CHECKS)) + " END"
    return f"SELECT *, {check} AS _check FROM {relation}"


def rejection_columns(check: str = "_check") -> str:
    """SQL for `reason, field, detail` of a row whose failed check index is `check`."""
    reason = f"CASE {check} " + " ".join(f"WHEN {i} THEN '{r.value}'" for i, (r, _, _, _) in enumerate(CHECKS)) + " END"
    field = f"CASE {check} " + " ".join(f"WHEN {i} THEN '{f}'" for i, (_, f, _, _) in enumerate(CHECKS)) + " END"
    detail = f"CASE {check} " + " ".join(f"WHEN {i} THEN {d}" for i, (_, _, _, d) in enumerate(CHECKS)) + " END"
    return f"{reason} AS reason, {field} AS field, {detail} AS detail"
