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
    entry number) is an error, not a silent second firing."""
    ensure(con)
    rows = 0
    for e in entries:
        con.execute(
            "INSERT INTO act_entries (playbook, level, unit_id, entry, entered_at, holdout, owner, reason, sent,"
            " exited_at, exit_reason, recorded_at, live) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)",
            [e.playbook, e.level, e.unit_id, e.entry, e.entered_at, e.holdout, e.owner,
             json.dumps(e.reason, default=str), bool(e.actions), now, e.live])
        for i, a in enumerate(e.actions):
            con.execute(
                "INSERT INTO act_outbox (key, playbook, unit_id, entry, action, kind, owner, payload, due_at, status,"
                " attempts, next_attempt_at, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?::TIMESTAMP + to_microseconds(?::BIGINT), 'pending', 0,"
                " ?::TIMESTAMP + to_microseconds(?::BIGINT), ?)",
                [outbox_key(e.playbook, e.unit_id, e.entry, i), e.playbook, e.unit_id, e.entry, i, a.kind, e.owner,
                 json.dumps(a.payload, default=str), now, int(a.delay_seconds * 1e6), now,
                 int(a.delay_seconds * 1e6), now])
            rows += 1
    return rows
