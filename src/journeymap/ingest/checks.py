"""Checks made before a file's rows are loaded: every column the mapping reads is in the file.

A misspelt column would otherwise make every row a dead letter (`bad_timestamp (empty)` for a wrong
`ts` column) or drop a channel or property silently. CSV headers and Parquet schemas are known
before loading; JSON Lines keys are checked against the keys of the first batch of records.
"""

from __future__ import annotations

from journeymap.errors import InputError, closest as close_names
from journeymap.ingest.mapping import CANONICAL_ALIASES, SourceMapping

MAX_LISTED = 30
_ESSENTIAL = ("fields.", "events[")
"""Keys whose column every event needs; on JSON Lines a missing one fails the file, the others
(`when`, `properties`, `traits`) only warn, since a JSON record may leave out an empty key."""


def closest(name: str, candidates: list[str]) -> str | None:
    """The candidate `name` probably means: the same but for case, else the closest by difflib.

    >>> closest("timestampp", ["id", "timestamp", "ev"]), closest("email", ["Email"]), closest("zzz", ["id"])
    ('timestamp', 'Email', None)
    """
    close = close_names(name, candidates)
    return close[0] if close else None


def _listing(columns: list[str]) -> str:
    shown = ", ".join(columns[:MAX_LISTED]) or "none"
    return shown + (f" and {len(columns) - MAX_LISTED} more" if len(columns) > MAX_LISTED else "")


def _missing(file: str, pairs: list[tuple[str, str]], columns: list[str], where: str, what: str) -> str:
    parts = []
    for key, col in pairs:
        near = closest(col, columns)
        parts.append(f"{col!r} ({where}{key}" + (f"; did you mean {near!r}?)" if near else ")"))
    return f"{file}: {what} {', '.join(parts)}"


def check_mapping_columns(file: str, mapping: SourceMapping, source_name: str | None, columns: list[str],
                          records: int | None = None) -> list[str]:
    """Raise InputError naming each mapped column the file lacks; returns warnings (JSON Lines only).

    `records` is the number of JSON records `columns` was read from (None: a CSV header or a Parquet schema)."""
    have = set(columns)
    missing = [(key, col) for key, col in mapping.mapped_columns() if col not in have]
    if not missing:
        return []
    where = f"sources.{source_name}." if source_name else "sources."
    if records is None:
        raise InputError(_missing(file, missing, columns, where, f"the file has no column{'s' if len(missing) > 1 else ''}") +
                         f"; fix journeymap.yml. The file's columns: {_listing(columns)}")
    essential = [(k, c) for k, c in missing if k.startswith(_ESSENTIAL) and not k.endswith((".when", ".properties"))]
    seen = f"the first {records:,} records"
    if essential:
        raise InputError(_missing(file, essential, columns, where, "no key") +
                         f" occurs in {seen}; fix journeymap.yml. Keys seen: {_listing(sorted(columns))}")
    optional = [p for p in missing if p not in essential]
    return [_missing(file, optional, columns, where, "no key") + f" occurs in {seen}; these stay empty"]


def check_canonical_columns(file: str, columns: list[str], anonymous: bool = False) -> None:
    """A canonical CSV or Parquet file (no mapping) needs a time column, an event (or type) column and
    an identifier column; raise InputError naming what is absent, with the file's closest column."""
    have = set(columns)
    needs = [("time", CANONICAL_ALIASES["ts"]), ("event", ("event", "type"))]
    if not anonymous:
        ids = tuple(a for f in ("user_id", "anonymous_id", "email", "account_id") for a in CANONICAL_ALIASES[f])
        needs.append(("identifier", ids))
    problems = []
    for what, names in needs:
        if have.intersection(names):
            continue
        near = next(((c, n) for n in names for c in [closest(n, columns)] if c), None)
        hint = f" ({near[0]!r} is close to {near[1]!r}: rename it)" if near else ""
        problems.append(f"no {what} column ({', '.join(names[:-1])} or {names[-1]}){hint}")
    if problems:
        raise InputError(f"{file}: {'; '.join(problems)}; name the columns so, or map them under `sources:` in "
                         f"journeymap.yml and pass --source. The file's columns: {_listing(columns)}")
