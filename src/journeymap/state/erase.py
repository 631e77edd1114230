"""Erase a person (or an account) from a workspace's store and journal: `journeymap erase`, docs/privacy.md.

`erase_rows` resolves who is meant through identity (after a fresh stitch): `--person` takes a person_id
(`u:ann`, as analyses show it) or any identifier of theirs (user id, anonymous id, email); `--email` an
email; `--account` an account id, which means every person whose account it is, and every event naming
the account. Everything those identifiers name is then removed in one transaction:

  events        every event of the persons (journey_events.person_id), and for an account every event
                naming it; the survey answers and texts they wrote are properties of those events
  dead_letters  rejected rows whose raw text or detail names one of the identifiers, as written in the
                events or as identity compares them, or whose message_id was an erased event's
  erase_log     a salted hash of each identifier (ingest/erased.py), so later loads refuse them

and the journal files (`journal_scrub`): every record of an unloaded segment (`journal/seg-*.jsonl`), a
kept loaded one (`journal/loaded/`) and the quarantine (`journal/quarantine.jsonl`, whose records are in
base64) that names an identifier or an erased message_id is dropped, each file rewritten and atomically
replaced. The derived tables (identity, persons, accounts, journey_events, the journey state) are rebuilt
by the workspace's refresh afterwards, and the store is compacted (workspace.py).

An identifier is matched in raw text case-insensitively as a substring when it has at least
`MIN_SUBSTRING` characters, and otherwise only as a whole JSON string ("42"), so that a short id does not
take every row that happens to contain its digits.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path

import duckdb

from journeymap.errors import InputError, did_you_mean
from journeymap.identity import stitch
from journeymap.ingest.erased import log_erased, normalise
from journeymap.ingest.journal import QUARANTINE
from journeymap.ingest.store import table_names
from journeymap.state.fold import stored, tables

MIN_SUBSTRING = 4


class NobodyToErase(InputError):
    """No person or account matches what `journeymap erase` was given."""


def _tables(con) -> set[str]:
    return table_names(con)


def resolve(con: duckdb.DuckDBPyConnection, person: str | None = None, email: str | None = None,
            account: str | None = None) -> tuple[list[str], list[str]]:
    """(person_ids, account_ids) that the options name; NobodyToErase when none, with a close match."""
    given = [x for x in (person, email, account) if x is not None]
    if len(given) != 1 or not given[0].strip():
        raise InputError("say who to erase with one of --person ID, --email EMAIL or --account ACCOUNT")
    stitch(con)  # identity as the events are now: every identifier of the person
    if person is not None:
        value = normalise(person)
        rows = con.execute("SELECT DISTINCT person_id FROM identity_map WHERE person_id = ? OR id_value = ? "
                           "OR (id_type = 'email' AND id_value = ?)", [value, value, value.lower()]).fetchall()
        rows = rows or _kept(con, "person", [value, f"u:{value}", f"e:{value.lower()}", f"a:{value}"])
        if not rows:
            _nobody(con, f"--person {person!r}: no person has this person_id or identifier", value,
                    "SELECT DISTINCT person_id FROM identity_map UNION SELECT id_value FROM identity_map")
        if len(rows) > 1:  # one value that is, say, one person's user id and another's anonymous id
            raise NobodyToErase(f"--person {person!r} names {len(rows)} persons ({', '.join(sorted(r[0] for r in rows))}):"
                                " pass the person_id of the one to erase (nothing was erased)")
        return sorted(r[0] for r in rows), []
    if email is not None:
        value = normalise(email, email=True)
        rows = con.execute("SELECT DISTINCT person_id FROM identity_map WHERE id_type = 'email' AND id_value = ?",
                           [value]).fetchall()
        rows = rows or _kept(con, "person", [f"e:{value}"])
        if not rows:
            _nobody(con, f"--email {email!r}: no person has this email", value,
                    "SELECT id_value FROM identity_map WHERE id_type = 'email'")
        return sorted(r[0] for r in rows), []
    value = normalise(account)
    named = con.execute("SELECT count(*) FROM journey_events WHERE account_id = ?", [value]).fetchone()[0]
    if not named and not _kept(con, "account", [value]):
        _nobody(con, f"--account {account!r}: no event names this account", value,
                "SELECT account_id FROM accounts")
    rows = con.execute("SELECT person_id FROM persons WHERE account_id = ?", [value]).fetchall()
    return sorted(r[0] for r in rows), [value]


def _kept(con: duckdb.DuckDBPyConnection, level: str, unit_ids: list[str]) -> list[tuple[str]]:
    """Units of the journey state among `unit_ids`: a person whose raw events retention.raw_events dropped is
    known only there, by the person_id it had (its other identifiers went with the events)."""
    if tables(level)["units"] not in table_names(con):
        return []
    return con.execute(f"SELECT unit_id FROM {tables(level)['units']} WHERE unit_id IN (SELECT unnest(?::VARCHAR[]))",
                       [unit_ids]).fetchall()


def _nobody(con, message: str, value: str, candidates_sql: str):
    candidates = [r[0] for r in con.execute(candidates_sql).fetchall() if r[0]]
    close = did_you_mean(value, candidates)
    raise NobodyToErase(message + (f"; {close}" if close else "") + " (nothing was erased)")


def erase_rows(con: duckdb.DuckDBPyConnection, person_ids: list[str], accounts: list[str]) -> dict:
    """Delete the events and dead letters of these persons and accounts and log their identifiers, in one
    transaction. Returns the counts removed, the identifiers logged, and `needles`: the identifiers as
    written anywhere (for the journal scrub and the byte check; never printed)."""
    con.execute("CREATE OR REPLACE TEMP TABLE _erase_persons AS SELECT unnest(?::VARCHAR[]) AS person_id", [person_ids])
    con.execute("CREATE OR REPLACE TEMP TABLE _erase_accounts AS SELECT unnest(?::VARCHAR[]) AS account_id", [accounts])
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _erase_events AS
        SELECT seq, message_id, user_id, anonymous_id, email, previous_id, account_id FROM events WHERE seq IN (
            SELECT seq FROM journey_events WHERE person_id IN (SELECT person_id FROM _erase_persons)
                                              OR account_id IN (SELECT account_id FROM _erase_accounts))
    """)
    identifiers = con.execute("SELECT id_type, id_value FROM identity_map WHERE person_id IN "
                              "(SELECT person_id FROM _erase_persons)").fetchall()
    known = {r[0] for r in con.execute("SELECT DISTINCT person_id FROM identity_map WHERE person_id IN "
                                       "(SELECT person_id FROM _erase_persons)").fetchall()}
    # a person the journey state alone keeps (retention dropped their events): the identifier in their person_id
    identifiers += [({"u": "user_id", "e": "email"}.get(p[0], "anonymous_id"), p[2:]) for p in person_ids
                    if p not in known and p[1:2] == ":"]
    raw = con.execute("""
        SELECT DISTINCT v FROM (
            SELECT unnest([user_id, anonymous_id, email, previous_id]) AS v FROM _erase_events
            UNION ALL SELECT account_id FROM _erase_events WHERE account_id IN (SELECT account_id FROM _erase_accounts))
        WHERE v IS NOT NULL
    """).fetchall()
    needles = sorted({v for _, v in identifiers} | {r[0] for r in raw} | set(accounts) | set(person_ids)
                     - {""})
    needles = sorted({n.strip() for n in needles if n and n.strip()})
    con.execute("CREATE OR REPLACE TEMP TABLE _erase_needles AS SELECT unnest(?::VARCHAR[]) AS v", [needles])
    matches = (f"(length(n.v) >= {MIN_SUBSTRING} AND contains(lower({{c}}), lower(n.v))) "
               "OR contains({c}, '\"' || n.v || '\"')")
    counts = {}
    con.begin()
    try:
        counts["events"] = con.execute("DELETE FROM events WHERE seq IN (SELECT seq FROM _erase_events)").fetchone()[0]
        counts["dead_letters"] = con.execute(f"""
            DELETE FROM dead_letters d WHERE d.message_id IN (SELECT message_id FROM _erase_events)
               OR EXISTS (SELECT 1 FROM _erase_needles n WHERE {matches.format(c="coalesce(d.raw, '')")}
                                                          OR {matches.format(c="coalesce(d.detail, '')")})
        """).fetchone()[0]
        erase_id = "x_" + uuid.uuid4().hex[:8]
        logged = {"person": sorted({v for _, v in identifiers} | {normalise(r[0]) for r in raw
                                                                   if r[0] not in accounts}),
                  "account": accounts}
        counts["erase_log"] = log_erased(con, logged, erase_id)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    message_ids = [r[0] for r in con.execute("SELECT message_id FROM _erase_events").fetchall()]
    seqs = [r[0] for r in con.execute("SELECT seq FROM _erase_events").fetchall()]
    for t in ("_erase_persons", "_erase_accounts", "_erase_events", "_erase_needles"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return {"erase_id": erase_id, "persons": person_ids, "accounts": accounts, "identifiers": len(identifiers),
            "removed": counts, "needles": needles, "message_ids": message_ids, "seqs": seqs}


def erase_state(con: duckdb.DuckDBPyConnection, person_ids: list[str], accounts: list[str]) -> None:
    """Delete the erased persons' and accounts' units from the journey state, in one transaction. The refresh
    after an erase would remove every unit that lost events anyway; this also removes the units that had
    none left to lose (retention.raw_events dropped them all, and the state kept their visits)."""
    present = table_names(con)
    con.begin()
    try:
        for level, ids in (("person", person_ids), ("account", accounts)):
            for table in stored(level).values():  # state_visits_L is a view over the last two
                if ids and table in present:
                    con.execute(f"DELETE FROM {table} WHERE unit_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
        con.commit()
    except BaseException:
        con.rollback()
        raise


def _names(payload: bytes, needles: list[tuple[bytes, bytes]], message_ids: set[bytes]) -> bool:
    lower = payload.lower()
    for exact, low in needles:
        if (len(exact) >= MIN_SUBSTRING and low in lower) or b'"' + exact + b'"' in payload:
            return True
    return any(m in payload for m in message_ids) if message_ids else False


def _rewrite(path: Path, keep: list[bytes]) -> None:
    """Replace `path` with `keep` atomically: a crash leaves the old file or the new one, never half of each."""
    tmp = path.with_name(path.name + ".erase-tmp")
    with open(tmp, "wb") as f:
        f.write(b"".join(keep))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def journal_scrub(journal: Path, needles: list[str], message_ids: list[str],
                  skip: set[str] = frozenset()) -> dict[str, int]:
    """Drop every journal record naming an identifier or an erased message_id; returns records removed per file
    (relative to the workspace: journal/seg-….jsonl). `skip`: segment names to leave (one being written)."""
    if not journal.is_dir():
        return {}
    pairs = [(n.encode(), n.lower().encode()) for n in needles]
    ids = {f'"{m}"'.encode() for m in message_ids if m}
    removed: dict[str, int] = {}
    files = sorted(journal.glob("seg-*.jsonl")) + sorted((journal / "loaded").glob("seg-*.jsonl"))
    for path in files:
        if path.name in skip:
            continue
        lines = path.read_bytes().splitlines(keepends=True)
        keep = [line for line in lines if not _names(line, pairs, ids)]
        if len(keep) != len(lines):
            _rewrite(path, keep)
            removed[str(path.relative_to(journal.parent))] = len(lines) - len(keep)
    quarantine = journal / QUARANTINE
    if quarantine.exists():
        lines = quarantine.read_bytes().splitlines(keepends=True)
        keep = []
        for line in lines:
            try:
                record = base64.b64decode(json.loads(line).get("raw_base64", ""))
            except (ValueError, AttributeError):
                record = line
            if not (_names(record, pairs, ids) or _names(line, pairs, ids)):
                keep.append(line)
        if len(keep) != len(lines):
            _rewrite(quarantine, keep)
            removed[str(quarantine.relative_to(journal.parent))] = len(lines) - len(keep)
    return removed


def remaining(path: Path, needles: list[str]) -> list[str]:
    """The needles of at least MIN_SUBSTRING characters still written in a file (case-insensitively): the byte check."""
    data = path.read_bytes()
    lower = data.lower()
    return [n for n in needles if len(n) >= MIN_SUBSTRING and n.lower().encode() in lower]


def still_named(workspace: Path, needles: list[str], skip: set[Path]) -> list[str]:
    """Files of the workspace that journeymap did not write and still name an identifier (the exports under data/,
    a journey-map.html written before the erase), relative to the workspace: they are reported, never changed."""
    wanted = [n.lower().encode() for n in needles if len(n) >= MIN_SUBSTRING]
    if not wanted:
        return []
    overlap = max(len(n) for n in wanted)
    found = []
    for path in sorted(p for p in workspace.rglob("*") if p.is_file()):
        if any(path == s or s in path.parents for s in skip):
            continue
        try:
            with open(path, "rb") as f:
                tail = b""
                while chunk := f.read(16 << 20):
                    window = (tail + chunk).lower()
                    if any(n in window for n in wanted):
                        found.append(str(path.relative_to(workspace)))
                        break
                    tail = window[-overlap:]
        except OSError:
            continue
    return found
