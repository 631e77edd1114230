"""journeymap's own task list: a `task` action opens a task in act_tasks, once per outbox key.

A task is delivered in the store itself, in the same transaction that marks its outbox row delivered, so it is
created exactly once (the key is unique: a re-run inserts nothing). Tasks are listed, assigned and closed with
`journeymap tasks` and on the web app's tasks page.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from datetime import UTC, datetime

import duckdb

from journeymap.act.outcome import Refused
from journeymap.errors import InputError, OptionError
from journeymap.ingest.store import has_table

DDL = """
CREATE SEQUENCE IF NOT EXISTS act_task_ids START 1;
CREATE TABLE IF NOT EXISTS act_tasks (
    id BIGINT PRIMARY KEY DEFAULT nextval('act_task_ids'),
    key VARCHAR NOT NULL UNIQUE,      -- the outbox row that opened it (act_outbox.key)
    playbook VARCHAR NOT NULL,
    unit_id VARCHAR NOT NULL,
    owner VARCHAR,
    title VARCHAR NOT NULL,
    body VARCHAR,
    status VARCHAR NOT NULL,          -- open, done
    due_at TIMESTAMP,                 -- wall clock, from the action's payload (null: no due date)
    created_at TIMESTAMP NOT NULL,
    closed_at TIMESTAMP,
    closed_by VARCHAR,
    history VARCHAR NOT NULL          -- JSON list of {"at", "by", "action": opened|assigned|closed, "owner"}
);
"""

STATUSES = ("open", "done")
COLUMNS = ("id", "key", "playbook", "unit_id", "owner", "title", "body", "status", "due_at", "created_at", "closed_at",
           "closed_by", "history")


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def check(payload: Mapping) -> Refused | None:
    if not isinstance(payload.get("title"), str) or not payload["title"].strip():
        return Refused("the payload has no task title")
    due = payload.get("due_at")
    if due is not None:
        try:
            due_time(due)
        except ValueError:
            return Refused(f"the task's due_at {due!r} is not an ISO date and time")
    return None


def due_time(value) -> datetime | None:
    """A payload's due_at as the store keeps times: UTC without a zone (an offset is converted, not dropped).

    >>> due_time("2026-02-01T12:00:00+02:00"), due_time("2026-02-01"), due_time(None)
    (datetime.datetime(2026, 2, 1, 10, 0), datetime.datetime(2026, 2, 1, 0, 0), None)
    """
    if value is None:
        return None
    when = datetime.fromisoformat(str(value))
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo is not None else when


def open_task(con: duckdb.DuckDBPyConnection, key: str, playbook: str, unit_id: str, payload: Mapping,
              now: datetime) -> bool:
    """Insert the task of outbox row `key` unless it exists; True when inserted. Call inside a transaction."""
    owner = payload.get("owner")
    history = json.dumps([{"at": now.isoformat(), "by": "journeymap", "action": "opened", "owner": owner}])
    inserted = con.execute(
        "INSERT INTO act_tasks (key, playbook, unit_id, owner, title, body, status, due_at, created_at, history) "
        "VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
        [key, playbook, unit_id, owner, payload["title"], payload.get("body"), due_time(payload.get("due_at")), now,
         history],
    ).fetchall()
    return bool(inserted)


def _row(r) -> dict:
    d = dict(zip(COLUMNS, r, strict=True))
    d["history"] = json.loads(d["history"])
    return d


def list_tasks(con: duckdb.DuckDBPyConnection, owner: str | None = None, status: str | None = None,
               limit: int = 500) -> list[dict]:
    if status is not None and status not in (*STATUSES, "all"):
        near = difflib.get_close_matches(status, [*STATUSES, "all"], n=1)
        raise OptionError(f"--status takes open, done or all, not {status!r}"
                          + (f" (did you mean {near[0]!r}?)" if near else ""), option="status")
    if not has_table(con, "act_tasks"):
        return []  # no task was ever opened (read as is: the table is never created by a read)
    where, args = [], []
    if owner is not None:
        where.append("owner = ?")
        args.append(owner)
    if status not in (None, "all"):
        where.append("status = ?")
        args.append(status)
    sql = (f"SELECT {', '.join(COLUMNS)} FROM act_tasks {'WHERE ' + ' AND '.join(where) if where else ''} "
           "ORDER BY status = 'done', due_at NULLS LAST, id LIMIT ?")
    return [_row(r) for r in con.execute(sql, [*args, limit]).fetchall()]


def get_task(con: duckdb.DuckDBPyConnection, task_id) -> dict:
    """The task `task_id`; InputError naming the nearest ids when there is none."""
    ensure(con)
    try:
        tid = int(str(task_id))
    except ValueError:
        tid = None
    rows = con.execute(f"SELECT {', '.join(COLUMNS)} FROM act_tasks WHERE id = ?", [tid]).fetchall() if tid else []
    if not rows:
        ids = [str(r[0]) for r in con.execute("SELECT id FROM act_tasks ORDER BY id").fetchall()]
        near = difflib.get_close_matches(str(task_id), ids, n=3)
        hint = f" (did you mean {', '.join(near)}?)" if near else (
            f"; the tasks are numbered {ids[0]} to {ids[-1]}" if ids else "; there are no tasks yet")
        raise InputError(f"no task {task_id}{hint}: `journeymap tasks` lists them")
    return _row(rows[0])


def _save(con, task: dict, **changes) -> dict:
    sets = ", ".join(f"{k} = ?" for k in changes)
    con.execute(f"UPDATE act_tasks SET {sets} WHERE id = ?", [*changes.values(), task["id"]])
    return get_task(con, task["id"])


def close_task(con: duckdb.DuckDBPyConnection, task_id, by: str, now: datetime) -> dict:
    """Mark the task done; closing a done task changes nothing (its answer says when and by whom it was)."""
    task = get_task(con, task_id)
    if task["status"] == "done":
        return task
    history = [*task["history"], {"at": now.isoformat(), "by": by, "action": "closed", "owner": task["owner"]}]
    return _save(con, task, status="done", closed_at=now, closed_by=by, history=json.dumps(history))


def assign_task(con: duckdb.DuckDBPyConnection, task_id, owner: str, by: str, now: datetime) -> dict:
    owner = owner.strip()
    if not owner:
        raise OptionError("OWNER must not be empty", option="owner")
    task = get_task(con, task_id)
    history = [*task["history"], {"at": now.isoformat(), "by": by, "action": "assigned", "owner": owner}]
    return _save(con, task, owner=owner, history=json.dumps(history))
