"""Who an identifier belongs to, after a stitch."""

from __future__ import annotations

import duckdb

from journeymap.events.schema import PERSON_IDS, PLACEHOLDER_IDS
from journeymap.identity.links import WHITESPACE


class NotStitched(LookupError):
    """The store has no identity_map yet."""


def person_of(con: duckdb.DuckDBPyConnection, id_type: str, id_value: str | None) -> str | None:
    """The person_id an identifier belongs to, or None when nobody is known by it.

    The value is compared as stitching compares it: trimmed, emails lower-cased, placeholders name nobody.
    """
    if id_type not in PERSON_IDS:
        raise ValueError(f"id_type must be one of {', '.join(PERSON_IDS)}, not {id_type!r}")
    value = (id_value or "").strip(WHITESPACE)
    if value.lower() in PLACEHOLDER_IDS:
        return None
    if id_type == "email":
        value = value.lower()
    try:
        rows = con.execute(
            "SELECT person_id FROM identity_map WHERE id_type = ? AND id_value = ?", [id_type, value]
        ).fetchall()
    except duckdb.CatalogException:
        raise NotStitched("no identity_map in this store yet; run identity stitching first") from None
    return rows[0][0] if rows else None
