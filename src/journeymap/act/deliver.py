"""The sender: delivers the outbox's due rows at least once, each carrying its `key` as the idempotency key.

A row is due when it is pending and its next_attempt_at has come. The sender sends each due row through its
channel (act.webhook, act.slack, act.mail, act.tasks) and only then records what the receiver answered:

  delivered   the receiver acknowledged (2xx, SMTP 250, the task stored): status delivered, delivered_at
  retry       a 5xx, 408, 429, timeout or refused connection: attempts + 1 and next_attempt_at after an
              exponential backoff with jitter, `backoff * 2^(attempts-1)` capped at `backoff_max`, a random
              50-100% of it; a Retry-After header replaces it (capped at a day). After `max_attempts`
              attempts the row is dead.
  dead        a 4xx other than 408/429, a 3xx, an SMTP 5xx: dead at once, the receiver's status and answer in
              last_error
  refused     nothing was sent (a non-http(s) URL, a missing secret or SMTP setting): dead at once, attempts
              unchanged

Crash safety: the outcome is written only after the receiver answered, one row per transaction, so a sender
killed at any point (kill -9) loses nothing; the rows it was sending are still pending and are sent again on
the next run, with the same key, which the receiver de-duplicates by (webhook-id, Message-ID). A task is the
exception that needs no de-duplication: it is created in the same transaction that marks its row delivered.

One sender per store: DuckDB lets one process write a store, so a second `journeymap act send` (or one
beside `journeymap serve`, whose sender thread delivers) fails with "workspace is locked"; within a process a
second Sender on the same store raises WorkspaceError. Nothing else claims rows, so none is sent twice at once.

The policy (Policy) comes from the command's options, else the environment (JOURNEYMAP_ACT_MAX_ATTEMPTS,
JOURNEYMAP_ACT_BACKOFF, JOURNEYMAP_ACT_BACKOFF_MAX, JOURNEYMAP_ACT_TIMEOUT, JOURNEYMAP_ACT_CONCURRENCY), else
the defaults below; docs/delivery.md.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta

import duckdb

from journeymap.act import mail, slack, tasks, webhook
from journeymap.act.outbox import ensure as ensure_outbox
from journeymap.act.outcome import Dead, Delivered, Outcome, Refused, Retry
from journeymap.errors import InputError, OptionError, WorkspaceError
from journeymap.ingest.store import has_table

KINDS = ("webhook", "slack", "email", "task")
STATUSES = ("pending", "delivered", "dead")
RETRY_AFTER_MAX = 86400.0
"""A Retry-After longer than a day is taken as a day."""


@dataclass(frozen=True)
class Policy:
    max_attempts: int = 10
    """Attempts before a row is dead: with the default backoff, about 3 to 6 hours of trying."""
    backoff: float = 30.0
    """Seconds before the second attempt; doubled for each attempt after."""
    backoff_max: float = 3600.0
    """The longest wait between two attempts."""
    timeout: float = 10.0
    """Seconds a receiver has to answer one attempt."""
    concurrency: int = 4
    """Rows sent at once (webhook, Slack and email rows; tasks are written one by one)."""

    ENV = {"max_attempts": "JOURNEYMAP_ACT_MAX_ATTEMPTS", "backoff": "JOURNEYMAP_ACT_BACKOFF",
           "backoff_max": "JOURNEYMAP_ACT_BACKOFF_MAX", "timeout": "JOURNEYMAP_ACT_TIMEOUT",
           "concurrency": "JOURNEYMAP_ACT_CONCURRENCY"}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **given) -> Policy:
        """The options given (not None), else the environment's, else the defaults; OptionError naming the option
        or variable for a value out of bounds."""
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            value, said = given.get(f.name), f"--{f.name.replace('_', '-')}"
            if value is None and env.get(cls.ENV[f.name], "").strip():
                value, said = env[cls.ENV[f.name]].strip(), cls.ENV[f.name]
            if value is None:
                continue
            kind = int if f.name in ("max_attempts", "concurrency") else float
            try:
                value = kind(value)
            except (TypeError, ValueError):
                raise OptionError(f"{said} takes a{'n integer' if kind is int else ' number'}, not {value!r}",
                                  option=f.name) from None
            if value <= 0 or value != value:
                raise OptionError(f"{said} must be positive, not {value!r}", option=f.name)
            values[f.name] = value
        return cls(**values)

    def delay(self, attempts: int, rng: random.Random) -> float:
        """Seconds before the next attempt after `attempts` failed ones: exponential, capped, 50-100% of it."""
        top = min(self.backoff_max, self.backoff * 2 ** min(attempts - 1, 60))
        return top / 2 + rng.random() * top / 2


def utcnow() -> datetime:
    """The wall clock the outbox is written in: UTC, without a time zone (DuckDB TIMESTAMP)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Summary:
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    refused: int = 0
    errors: list[dict] = field(default_factory=list)  # the last failures: key, status, error

    def add(self, key: str, outcome: Outcome, status: str) -> None:
        if isinstance(outcome, Delivered):
            self.delivered += 1
            return
        if isinstance(outcome, Refused):
            self.refused += 1
        elif status == "dead":
            self.dead += 1
        else:
            self.retried += 1
        self.errors = [*self.errors[-19:], {"key": key, "status": status, "error": outcome.error}]

    @property
    def attempts(self) -> int:
        return self.delivered + self.retried + self.dead + self.refused

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Row:
    key: str
    kind: str
    playbook: str
    unit_id: str
    payload: dict
    attempts: int


def _store_path(con: duckdb.DuckDBPyConnection) -> str:
    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return str(row[0]) if row and row[0] else f"memory:{id(con)}"


_running: set[str] = set()
_running_lock = threading.Lock()


def channel_send(row: Row, env: Mapping[str, str], timeout: float) -> Outcome:
    """Send `row` through its channel (not tasks: they are written in the store). Never raises: a bug in a
    channel is a retry with its message, not a dead sender."""
    send = {"webhook": webhook.send, "slack": slack.send, "email": mail.send}.get(row.kind)
    if send is None:
        near = difflib.get_close_matches(row.kind, KINDS, n=1)
        return Refused(f"unknown action kind {row.kind!r}" + (f" (did you mean {near[0]!r}?)" if near else "")
                       + f"; kinds: {', '.join(KINDS)}")
    try:
        return send(row.key, row.payload, env, timeout)
    except Exception as exc:  # noqa: BLE001 - recorded in last_error, retried with backoff
        return Retry(f"{type(exc).__name__}: {exc}")


class Sender:
    """Delivers due outbox rows of the store `con` (a connection, or a cursor of the server's connection with
    the `lock` its writers share). Use as a context manager: one Sender per store per process."""

    def __init__(self, con: duckdb.DuckDBPyConnection, policy: Policy | None = None, *,
                 env: Mapping[str, str] | None = None, lock=None, rng: random.Random | None = None,
                 clock: Callable[[], datetime] = utcnow, on_outcome: Callable[[str, Outcome, str], None] | None = None):
        self.con = con
        self.policy = policy or Policy.from_env(env)
        self.env = os.environ if env is None else env
        self.lock = lock if lock is not None else threading.RLock()
        self.rng = rng or random.Random()
        self.clock = clock
        self.on_outcome = on_outcome
        self.summary = Summary()
        self._pool: ThreadPoolExecutor | None = None
        self._path: str | None = None
        self.wakeup = threading.Event()
        """Set to look at the outbox now (rows re-queued, the server stopping) rather than at the next poll."""

    def __enter__(self) -> Sender:
        with self.lock:
            ensure_outbox(self.con)
            tasks.ensure(self.con)
            path = _store_path(self.con)
        with _running_lock:
            if path in _running:
                raise WorkspaceError(f"a sender is already delivering the outbox of {path} in this process")
            _running.add(path)
        self._path = path
        self._pool = ThreadPoolExecutor(self.policy.concurrency, thread_name_prefix="journeymap-send")
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with _running_lock:
            _running.discard(self._path)

    # -- reading and writing the outbox (each under the lock, one short transaction) --------------------------

    def due(self, limit: int) -> list[Row]:
        with self.lock:
            rows = self.con.execute(
                "SELECT key, kind, playbook, unit_id, payload, attempts FROM act_outbox "
                "WHERE status = 'pending' AND coalesce(next_attempt_at, due_at) <= ? "
                "ORDER BY coalesce(next_attempt_at, due_at), key LIMIT ?", [self.clock(), limit]).fetchall()
        out = []
        for key, kind, playbook, unit_id, payload, attempts in rows:
            try:
                data = json.loads(payload)
            except (TypeError, ValueError):
                data = None
            out.append(Row(key, kind, playbook, unit_id, data if isinstance(data, dict) else {}, attempts))
        return out

    def next_due(self) -> datetime | None:
        with self.lock:
            return self.con.execute("SELECT min(coalesce(next_attempt_at, due_at)) FROM act_outbox "
                                    "WHERE status = 'pending'").fetchone()[0]

    def record(self, row: Row, outcome: Outcome) -> str:
        """Write what the attempt came to; returns the row's new status."""
        now = self.clock()
        p = self.policy
        if isinstance(outcome, Delivered):
            status, sql, args = "delivered", ("status = 'delivered', attempts = attempts + 1, delivered_at = ?, "
                                              "next_attempt_at = NULL"), [now]
        elif isinstance(outcome, Refused):
            status, sql, args = "dead", "status = 'dead', next_attempt_at = NULL, last_error = ?", [outcome.error]
        elif isinstance(outcome, Dead) or row.attempts + 1 >= p.max_attempts:
            error = outcome.error if isinstance(outcome, Dead) else (
                f"{outcome.error} (dead after {row.attempts + 1} attempts; `journeymap act retry {row.key}` re-sends)")
            status, sql, args = "dead", ("status = 'dead', attempts = attempts + 1, next_attempt_at = NULL, "
                                         "last_error = ?"), [error]
        else:
            wait_s = (min(outcome.retry_after, RETRY_AFTER_MAX) if outcome.retry_after is not None
                      else p.delay(row.attempts + 1, self.rng))
            status, sql, args = "pending", "attempts = attempts + 1, next_attempt_at = ?, last_error = ?", [
                now + timedelta(seconds=wait_s), outcome.error]
        with self.lock:
            self.con.execute(f"UPDATE act_outbox SET {sql} WHERE key = ? AND status = 'pending'", [*args, row.key])
        return status

    def _task(self, row: Row) -> str:
        bad = tasks.check(row.payload)
        if bad is not None:
            return self._done(row, bad, self.record(row, bad))
        now = self.clock()
        with self.lock:
            self.con.begin()
            try:
                tasks.open_task(self.con, row.key, row.playbook, row.unit_id, row.payload, now)
                self.con.execute("UPDATE act_outbox SET status = 'delivered', attempts = attempts + 1, "
                                 "delivered_at = ?, next_attempt_at = NULL WHERE key = ? AND status = 'pending'",
                                 [now, row.key])
                self.con.commit()
            except BaseException:
                self.con.rollback()
                raise
        return self._done(row, Delivered("task opened"), "delivered")

    def _done(self, row: Row, outcome: Outcome, status: str) -> str:
        self.summary.add(row.key, outcome, status)
        if self.on_outcome is not None:
            self.on_outcome(row.key, outcome, status)
        return status

    # -- sending -----------------------------------------------------------------------------------------

    def send_due(self, stop: threading.Event | None = None) -> int:
        """One pass over the rows due now (at most a batch); returns how many were attempted."""
        assert self._pool is not None, "use the Sender as a context manager"
        rows = self.due(self.policy.concurrency * 8)
        pending: dict[Future, Row] = {}
        for row in rows:
            if stop is not None and stop.is_set():
                break
            if row.kind == "task":
                self._task(row)
            else:
                pending[self._pool.submit(channel_send, row, self.env, self.policy.timeout)] = row
        while pending:  # record each answer as it comes: a kill loses at most the rows still in flight
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                row = pending.pop(fut)
                outcome = fut.result()
                self._done(row, outcome, self.record(row, outcome))
        return len(rows)

    def drain(self, stop: threading.Event | None = None) -> Summary:
        """Send until nothing is due now (rows retried later stay pending); returns what was done."""
        while not (stop is not None and stop.is_set()) and self.send_due(stop):
            pass
        return self.summary

    def run(self, stop: threading.Event, poll: float = 1.0, on_idle: Callable[[], None] | None = None) -> Summary:
        """Keep delivering until `stop` is set: drain, then wait for the next due row (at most `poll` seconds)."""
        while not stop.is_set():
            self.drain(stop)
            if on_idle is not None:
                on_idle()
            nxt = self.next_due()
            wait_s = poll if nxt is None else max(0.0, min(poll, (nxt - self.clock()).total_seconds()))
            self.wakeup.wait(max(wait_s, 0.05))
            self.wakeup.clear()
        return self.summary


# -- the outbox as commands and pages see it ---------------------------------------------------------------

OUTBOX_COLUMNS = ("key", "playbook", "unit_id", "kind", "owner", "status", "attempts", "due_at", "next_attempt_at",
                  "last_error", "delivered_at", "created_at")
VIEWS = ("pending", "failed", "retried", "dead", "delivered", "open", "all")
"""pending: not yet delivered; failed: pending with a failed attempt; retried: delivered after a failure;
dead: given up; delivered; open (the default): pending and dead; all."""

_WHERE = {"pending": "status = 'pending'", "failed": "status = 'pending' AND attempts > 0",
          "retried": "status = 'delivered' AND attempts > 1", "dead": "status = 'dead'",
          "delivered": "status = 'delivered'", "open": "status <> 'delivered'", "all": "TRUE"}


def outbox_rows(con: duckdb.DuckDBPyConnection, view: str = "open", limit: int = 200) -> dict:
    """The rows of one view (VIEWS) with the counts of every status."""
    if view not in VIEWS:
        near = difflib.get_close_matches(view, VIEWS, n=1)
        raise OptionError(f"--status takes {', '.join(VIEWS)}, not {view!r}"
                          + (f" (did you mean {near[0]!r}?)" if near else ""), option="status")
    counts = dict.fromkeys(STATUSES, 0)
    if not has_table(con, "act_outbox"):  # a store no playbook has fired in yet (read as is: never created here)
        return {"view": view, "counts": {**counts, "failed": 0, "retried": 0}, "total": 0, "rows": []}
    counts.update(dict(con.execute("SELECT status, count(*) FROM act_outbox GROUP BY status").fetchall()))
    counts["failed"] = con.execute(f"SELECT count(*) FROM act_outbox WHERE {_WHERE['failed']}").fetchone()[0]
    counts["retried"] = con.execute(f"SELECT count(*) FROM act_outbox WHERE {_WHERE['retried']}").fetchone()[0]
    rows = con.execute(f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM act_outbox WHERE {_WHERE[view]} "
                       "ORDER BY status = 'dead' DESC, coalesce(next_attempt_at, due_at), key LIMIT ?",
                       [limit]).fetchall()
    total = con.execute(f"SELECT count(*) FROM act_outbox WHERE {_WHERE[view]}").fetchone()[0]
    return {"view": view, "counts": counts, "total": total,
            "rows": [dict(zip(OUTBOX_COLUMNS, r, strict=True)) for r in rows]}


def retry(con: duckdb.DuckDBPyConnection, keys: list[str] | None = None, dead: bool = False,
          now: datetime | None = None) -> list[str]:
    """Queue `keys` (any status: a delivered row is sent again, with the same key) and, with `dead`, every dead
    row, to be sent now with a fresh count of attempts; returns the keys queued. An unknown key is an InputError
    naming the nearest keys, and nothing is queued."""
    if not keys and not dead:
        raise OptionError("say which rows to re-send: KEY ... or --dead (every dead row)", option="dead")
    ensure_outbox(con)
    now = now or utcnow()
    keys = list(dict.fromkeys(keys or []))
    if keys:
        known = {r[0] for r in con.execute("SELECT key FROM act_outbox WHERE key IN (SELECT unnest(?::VARCHAR[]))",
                                           [keys]).fetchall()}
        missing = [k for k in keys if k not in known]
        if missing:
            everything = [r[0] for r in con.execute("SELECT key FROM act_outbox").fetchall()]
            near = difflib.get_close_matches(missing[0], everything, n=3)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise InputError(f"no outbox row with key {missing[0]!r}{hint}: `journeymap act outbox --status all` "
                             "lists them")
    with _transaction(con):
        queued = [r[0] for r in con.execute(
            "UPDATE act_outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, delivered_at = NULL "
            "WHERE key IN (SELECT unnest(?::VARCHAR[])) OR (? AND status = 'dead') RETURNING key",
            [now, keys, dead]).fetchall()]
    return sorted(queued)


@contextlib.contextmanager
def _transaction(con) -> Iterator[None]:
    con.begin()
    try:
        yield
        con.commit()
    except BaseException:
        con.rollback()
        raise
