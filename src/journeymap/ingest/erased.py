"""The erase log: a salted hash of every identifier `journeymap erase` removed, so loads refuse them later.

An erased person's identifiers (user ids, anonymous ids, emails: as identity compares them, trimmed,
emails lower-cased) and an erased account's id are kept only as sha256(salt || kind || ":" || value),
`kind` being `person` or `account`, with the time of the erase. The salt is random, one per workspace, in
the store's `meta` table (`erase.salt`): the log cannot be matched against a list of emails without it.

The Loader checks each event of a file or journal segment against the log (`refused_sql`): an event that
names an erased identifier (user_id, anonymous_id, email or previous_id; account_id for an erased
account) is rejected with the reason `erased`, counted in the load's report, and never stored, not even
as a dead letter (whose raw row would hold the very identifiers that were erased).

>>> import tempfile
>>> from journeymap.ingest.store import open_store
>>> con = open_store(tempfile.mkdtemp())
>>> log_erased(con, {"person": ["ann@x.io"]}, erase_id="e1")
1
>>> con.execute(f"SELECT {refused_sql(con)} FROM (SELECT ' Ann@X.io ' AS email, NULL AS user_id,"
...             " NULL AS anonymous_id, NULL AS previous_id, NULL AS account_id)").fetchone()[0]
'email'
"""

from __future__ import annotations

import hashlib
import secrets

import duckdb

from journeymap.ingest.store import has_table

SALT_KEY = "erase.salt"
DDL = """
CREATE TABLE IF NOT EXISTS erase_log (
    hash      VARCHAR NOT NULL,   -- sha256(salt || kind || ':' || value), hex
    kind      VARCHAR NOT NULL,   -- person (one of their identifiers) or account
    erase_id  VARCHAR NOT NULL,   -- one `journeymap erase`
    erased_at TIMESTAMP NOT NULL
)
"""
PERSON_FIELDS = ("user_id", "anonymous_id", "email", "previous_id")
"""The event fields checked against an erased person's identifiers (email lower-cased), in this order."""


def _trimmed(column: str) -> str:
    # identity's trimming (identity.links.WHITESPACE): ASCII whitespace at both ends
    return f"regexp_replace({column}, '^[\\t\\n\\v\\f\\r ]+|[\\t\\n\\v\\f\\r ]+$', '', 'g')"


def normalise(value: str, email: bool = False) -> str:
    value = value.strip(" \t\n\r\x0b\x0c")
    return value.lower() if email else value


def salt(con: duckdb.DuckDBPyConnection) -> str:
    """The workspace's salt, made on first use."""
    con.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", [SALT_KEY, secrets.token_hex(16)])
    return con.execute("SELECT value FROM meta WHERE key = ?", [SALT_KEY]).fetchone()[0]


def identifier_hash(salt_value: str, kind: str, value: str) -> str:
    return hashlib.sha256(f"{salt_value}{kind}:{value}".encode()).hexdigest()


def log_erased(con: duckdb.DuckDBPyConnection, values: dict[str, list[str]], erase_id: str) -> int:
    """Log the (already normalised) values per kind; returns how many new hashes were logged."""
    con.execute(DDL)
    s = salt(con)
    rows = sorted({(identifier_hash(s, kind, v), kind) for kind, vs in values.items() for v in vs})
    known = {r[0] for r in con.execute("SELECT hash FROM erase_log").fetchall()}
    new = [(h, kind, erase_id) for h, kind in rows if h not in known]
    if new:
        con.executemany("INSERT INTO erase_log VALUES (?, ?, ?, now()::TIMESTAMP)", new)
    return len(new)


def has_erased(con: duckdb.DuckDBPyConnection) -> bool:
    return has_table(con, "erase_log") and con.execute("SELECT count(*) FROM (SELECT 1 FROM erase_log LIMIT 1)").fetchone()[0] > 0


def refused_sql(con: duckdb.DuckDBPyConnection) -> str:
    """SQL over an event's canonical columns: the first field naming an erased identifier, else NULL."""
    s = salt(con).replace("'", "''")
    whens = []
    for column in PERSON_FIELDS:
        value = _trimmed(column)
        if column == "email":
            value = f"lower({value})"
        whens.append(f"WHEN sha256('{s}person:' || {value}) IN (SELECT hash FROM erase_log WHERE kind = 'person') "
                     f"THEN '{column}'")
    whens.append(f"WHEN sha256('{s}account:' || {_trimmed('account_id')}) IN "
                 "(SELECT hash FROM erase_log WHERE kind = 'account') THEN 'account_id'")
    return "CASE " + " ".join(whens) + " END"
