"""The tables acting on the journey writes, and the one way firings enter the outbox.

  act_entries  one row per (playbook, unit, entry number): a unit entering a playbook, whether it is in the
               holdout (it enters, nothing is sent), its owner, why it entered, and how its run ended
  act_outbox   one row per action of a treated entry: what to deliver, to whom, when; its `key`
               "{playbook}/{unit}/{entry}/{action}" is the idempotency key every delivery carries

The payload of an outbox row, per kind (what the evaluator writes and the sender reads; secrets are never
stored, only the name of the environment variable that holds them):

  webhook  {"url", "secret_env", "body"}    body: {"type": "journeymap.playbook.entered", "playbook", "unit":
                                            {"level", "id"}, "entry", "entered_at", "owner", "reason"}
  slack    {"url", "text"}                  a Slack-compatible incoming webhook
  email    {"to": [address], "subject", "text"}
  task     {"owner", "title", "body", "due_at"}   due_at: ISO wall-clock time or null

An entry and its outbox rows are written in the same transaction as the evaluation that produced them
(`record`), so a firing is never sent for an entry that was not stored, nor stored without its actions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

DDL = """
CREATE TABLE IF NOT EXISTS act_entries (
    playbook VARCHAR NOT NULL,
    level VARCHAR NOT NULL,
    unit_id VARCHAR NOT NULL,
    entry INTEGER NOT NULL,            -- 1 for the unit's first entry into this playbook, then 2, ...
    entered_at TIMESTAMP NOT NULL,     -- data time: the event that met the entry condition
    holdout BOOLEAN NOT NULL,          -- entered, but no action is sent (act.outbox.in_holdout)
    owner VARCHAR,                     -- who the firing names (never null for a treated entry)
    reason JSON NOT NULL,              -- the condition met: rule, values, times (what `explain` shows)
    sent BOOLEAN NOT NULL,             -- false for entries recorded without actions (holdout, backfill)
    exited_at TIMESTAMP,               -- data time the run ended (goal reached, exit condition)
    exit_reason VARCHAR,               -- goal, exit, or null while the run is open
    recorded_at TIMESTAMP NOT NULL,    -- wall clock of the evaluation that stored it
    live BOOLEAN,                      -- at or after the watermark (sent, or held out from being sent): what the
                                       -- effect measures; false for history; null in stores older than the column
    PRIMARY KEY (playbook, unit_id, entry)
);
CREATE TABLE IF NOT EXISTS act_outbox (
    key VARCHAR PRIMARY KEY,           -- "{playbook}/{unit_id}/{entry}/{action}": the idempotency key
    playbook VARCHAR NOT NULL,
    unit_id VARCHAR NOT NULL,
    entry INTEGER NOT NULL,
    action INTEGER NOT NULL,           -- index in the playbook's actions
    kind VARCHAR NOT NULL,             -- webhook, email, slack, task
    owner VARCHAR,
    payload JSON NOT NULL,             -- what the sender delivers (the entry, the unit, the reason)
    due_at TIMESTAMP NOT NULL,         -- wall clock: recorded_at plus the action's delay
    status VARCHAR NOT NULL,           -- pending, delivered, dead
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP,         -- wall clock of the next try (backoff); null once delivered or dead
    last_error VARCHAR,                -- the last failure, e.g. the receiver's status and answer
    delivered_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
"""


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    """Create the act tables if the store has none yet (a store made before act/ existed has none)."""
    con.execute(DDL)
    con.execute("ALTER TABLE act_entries ADD COLUMN IF NOT EXISTS live BOOLEAN")  # a store older than the column


def in_holdout(playbook: str, unit_id: str, fraction: float) -> bool:
    """Whether `unit_id` is in `playbook`'s holdout: a stable hash of both, so a unit stays on the same side
    across refreshes, restarts and machines, and the sides of two playbooks are independent."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"{playbook}\x00{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def outbox_key(playbook: str, unit_id: str, entry: int, action: int) -> str:
    return f"{playbook}/{unit_id}/{entry}/{action}"


@dataclass
class Action:
    """One action of an entry, as the outbox stores it."""

    kind: str
    payload: dict
    delay_seconds: float = 0.0


@dataclass
class Entry:
    """A unit entering a playbook, with the actions to send (none for a holdout or backfilled entry)."""

    playbook: str
    level: str
    unit_id: str
    entry: int
    entered_at: datetime
    holdout: bool
    owner: str | None
    reason: dict
    actions: list[Action] = field(default_factory=list)
    live: bool = True
    """At or after the watermark: sent unless held out, and measured (act.effect); False for history."""


def record(con: duckdb.DuckDBPyConnection, entries: list[Entry], now: datetime) -> int:
    """Store `entries` and the outbox rows of their actions; returns the outbox rows written.

    Call inside the caller's transaction (the evaluation's): an entry already stored (same playbook, unit and
    entry number) is an error, not a silent second firing. One statement per table, the rows passed as lists:
    a playbook's first evaluation records its whole history (2,640 entries and 2,067 actions on the demo), which
    took 3.9 s one row at a time."""
    ensure(con)
    if not entries:
        return 0
    con.execute("""
        INSERT INTO act_entries (playbook, level, unit_id, entry, entered_at, holdout, owner, reason, sent,
                                 exited_at, exit_reason, recorded_at, live)
        SELECT unnest($playbook::VARCHAR[]), unnest($level::VARCHAR[]), unnest($unit::VARCHAR[]),
               unnest($entry::INTEGER[]), unnest($entered_at::TIMESTAMP[]), unnest($holdout::BOOLEAN[]),
               unnest($owner::VARCHAR[]), unnest($reason::VARCHAR[])::JSON, unnest($sent::BOOLEAN[]), NULL, NULL,
               $now::TIMESTAMP, unnest($live::BOOLEAN[])""", {
        "playbook": [e.playbook for e in entries], "level": [e.level for e in entries],
        "unit": [e.unit_id for e in entries], "entry": [e.entry for e in entries],
        "entered_at": [e.entered_at for e in entries], "holdout": [e.holdout for e in entries],
        "owner": [e.owner for e in entries], "reason": [json.dumps(e.reason, default=str) for e in entries],
        "sent": [bool(e.actions) for e in entries], "now": now, "live": [e.live for e in entries]})
    actions = [(e, i, a) for e in entries for i, a in enumerate(e.actions)]
    if actions:
        con.execute("""
            INSERT INTO act_outbox (key, playbook, unit_id, entry, action, kind, owner, payload, due_at, status,
                                    attempts, next_attempt_at, created_at)
            SELECT key, playbook, unit_id, entry, action, kind, owner, payload::JSON,
                   $now::TIMESTAMP + to_microseconds(delay), 'pending', 0, $now::TIMESTAMP + to_microseconds(delay),
                   $now::TIMESTAMP
            FROM (SELECT unnest($key::VARCHAR[]) AS key, unnest($playbook::VARCHAR[]) AS playbook,
                         unnest($unit::VARCHAR[]) AS unit_id, unnest($entry::INTEGER[]) AS entry,
                         unnest($action::INTEGER[]) AS action, unnest($kind::VARCHAR[]) AS kind,
                         unnest($owner::VARCHAR[]) AS owner, unnest($payload::VARCHAR[]) AS payload,
                         unnest($delay::BIGINT[]) AS delay)""", {
            "key": [outbox_key(e.playbook, e.unit_id, e.entry, i) for e, i, _ in actions],
            "playbook": [e.playbook for e, _, _ in actions], "unit": [e.unit_id for e, _, _ in actions],
            "entry": [e.entry for e, _, _ in actions], "action": [i for _, i, _ in actions],
            "kind": [a.kind for _, _, a in actions], "owner": [e.owner for e, _, _ in actions],
            "payload": [json.dumps(a.payload, default=str) for _, _, a in actions],
            "delay": [int(a.delay_seconds * 1e6) for _, _, a in actions], "now": now})
    return len(actions)
