"""Evaluate every playbook on the journey state: the new entries, their owners, reasons and actions, recorded
with their outbox rows in one transaction (act.outbox.record), and the open runs a goal or exit has closed.

Entries. A playbook's entry condition gives candidate moments per unit (act.triggers.candidates), those that
pass the audience filters are kept, and the re-entry rules pick the entries in time order: a unit's first
candidate is its entry 1, then the first candidate at least `reentry.cooldown` after the previous entry, up to
`reentry.max_entries`. The stored act_entries decide where a unit stands: the pick continues from the unit's
last stored entry (its number and time), so an entry is never recorded twice, across refreshes and restarts,
and evaluating after each of several time-ordered loads gives the entries one evaluation over everything gives.
Everything runs in SQL over the store (a recursive query, one step per entry); only the new entries come back.

Time is the data's time: `now` is the latest journey event of the level. A condition that needs time to pass
("not Y within 7d of X", stalled 14d) enters once the data reaches that moment.

Watermark. The first time a playbook is evaluated in a workspace, the data's time then is stored in `meta`
(`act.PLAYBOOK.watermark`). Entries before it are history: they are recorded (backtest and the effect read
them) without actions (`sent` false). Entries at or after it get their actions, unless in the holdout. So a
playbook added to a workspace with years of history does not mail everyone it would have entered. The entries
of the kinds read from the latest scores (risk_above, health_band) at that first evaluation are history too:
who is at risk when the playbook is added is its starting point, not a change it saw.

Runs. A run (an entry) is open until the unit's first goal or exit after the entry (`exited_at`,
`exit_reason`); every evaluation closes the open runs whose goal or exit has now happened.

Effect. After its runs are closed, each playbook's measured effect (treated against held-out entries) is
stored in act_effects (act.effect), so the pages read it instead of computing it.

Secrets. A playbook with a webhook whose `secret_env` is not set is not evaluated: nothing of it is recorded
(so nothing is recorded that could not be sent), and the report says which variable to set.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field

import duckdb

from journeymap.act import comments, effect, health
from journeymap.act.actions import actions_for
from journeymap.act.outbox import Entry, ensure, in_holdout, record
from journeymap.act.triggers import Context, audience_sql, candidates, outcomes, q
from journeymap.engine.backends import duckdb_engine
from journeymap.ingest.store import has_table
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.playbooks import Playbook
from journeymap.state.fold import meta
from journeymap.state.read import current_tables

UNLIMITED = 1_000_000
SNAPSHOT_KINDS = ("risk_above", "health_band")
"""Entry kinds read from the latest scores only (state_risk, the health bands now), dated at the scoring."""


def watermark_key(playbook_id: str) -> str:
    return f"act.{playbook_id}.watermark"


@dataclass
class PlaybookRun:
    """What one evaluation did for one playbook."""

    playbook: str
    level: str
    entered: int = 0
    """New entries recorded (history included)."""
    sent: int = 0
    """Of those, entries with actions in the outbox."""
    holdout: int = 0
    backfill: int = 0
    """New entries before the watermark: recorded without actions."""
    closed: int = 0
    """Open runs a goal or exit closed."""
    outbox: int = 0
    watermark: str | None = None
    error: str | None = None
    entries: list[dict] = field(default_factory=list)
    """The new entries themselves (dry run only)."""


@dataclass
class ActReport:
    playbooks: list[PlaybookRun]
    seconds: float
    dry_run: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if not self.playbooks:
            return "no playbooks"
        parts = []
        for p in self.playbooks:
            if p.error:
                parts.append(f"{p.playbook}: not evaluated ({p.error})")
            else:
                parts.append(f"{p.playbook}: {p.entered:,} entered ({p.sent:,} sent, {p.holdout:,} held out, "
                             f"{p.backfill:,} history), {p.closed:,} runs closed")
        return "; ".join(parts)


def data_now(con: duckdb.DuckDBPyConnection, level: str) -> dt.datetime | None:
    return con.execute(f"SELECT max(ts) FROM state_events_{level}").fetchone()[0]


def level_problem(con, definition: JourneyDefinition, level: str) -> str | None:
    """Why the journey state of `level` cannot be evaluated on (None: it can)."""
    if definition.engine.backend != "duckdb":
        return "playbooks are evaluated on the DuckDB engine's journey state only"
    if not any(lv == level for lv, _ in current_tables(con, definition)):
        return f"the {level} journey state is not current: run `journeymap refresh`"
    return None


def selection_sql(ctx: Context, playbook: Playbook, seeded: bool) -> str:
    """SQL: unit_id, entry, ts, seq, detail, owner, persona, plan, mrr of the entries the re-entry rules pick
    from the audience's candidates, continuing from each unit's last stored entry when `seeded`."""
    cand = audience_sql(ctx, playbook, candidates(ctx, playbook))
    cooldown = f"to_microseconds({int(_seconds(playbook.reentry.cooldown) * 1e6)}::BIGINT)"
    most = playbook.reentry.max_entries or UNLIMITED
    seed = (f"SELECT unit_id, max(entry) AS n, max(entered_at) AS last FROM act_entries "
            f"WHERE playbook = {q(playbook.id)} GROUP BY unit_id") if seeded else \
        "SELECT NULL::VARCHAR AS unit_id, 0 AS n, NULL::TIMESTAMP AS last LIMIT 0"
    return f"""
        WITH RECURSIVE cand AS MATERIALIZED (SELECT * FROM ({cand})),
        seed AS ({seed}),
        pick(unit_id, entry, ts, seq) AS (
            SELECT c.unit_id, coalesce(any_value(s.n), 0) + 1, min(c.ts), arg_min(c.seq, c.ts)
            FROM cand c LEFT JOIN seed s ON s.unit_id = c.unit_id
            WHERE (s.last IS NULL OR c.ts >= s.last + {cooldown}) AND coalesce(s.n, 0) < {most}
            GROUP BY c.unit_id
            UNION ALL
            SELECT p.unit_id, p.entry + 1, min(c.ts), arg_min(c.seq, c.ts)
            FROM pick p JOIN cand c ON c.unit_id = p.unit_id AND c.ts >= p.ts + {cooldown}
            WHERE p.entry < {most}
            GROUP BY p.unit_id, p.entry
        )
        SELECT p.unit_id, p.entry, p.ts, p.seq, c.detail, c.owner, c.persona, c.plan, c.mrr
        FROM pick p JOIN cand c ON c.unit_id = p.unit_id AND c.ts = p.ts AND c.seq = p.seq
        QUALIFY row_number() OVER (PARTITION BY p.unit_id, p.entry ORDER BY c.detail) = 1
        ORDER BY p.ts, p.unit_id"""


def _seconds(duration: str) -> float:
    from journeymap.journey.durations import parse_duration

    return parse_duration(duration)


def reason_of(playbook: Playbook, row: dict) -> dict:
    """What `explain` and every firing say about why the unit entered."""
    return {"rule": playbook.entry.kind,
            "condition": playbook.entry.model_dump(mode="json", exclude_none=True, by_alias=True)[playbook.entry.kind],
            "values": json.loads(row["detail"]) if row["detail"] else {},
            "at": row["ts"].isoformat(),
            "audience": {"persona": row["persona"], "plan": row["plan"], "mrr": row["mrr"]}}


def new_entries(con, definition: JourneyDefinition, playbook: Playbook, now: dt.datetime, seeded: bool = True,
                unit: str | None = None) -> list[dict]:
    """The entries the re-entry rules pick, as dicts (unit_id, entry, ts, detail, owner, persona, plan, mrr)."""
    ctx = Context(duckdb_engine(con), definition, definition.playbook_level(playbook), now, unit)
    cur = con.execute(selection_sql(ctx, playbook, seeded))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def close_runs(con, definition: JourneyDefinition, playbook: Playbook, now: dt.datetime) -> int:
    """Set exited_at/exit_reason of the playbook's open runs whose goal or exit has happened by `now`."""
    ctx = Context(duckdb_engine(con), definition, definition.playbook_level(playbook), now)
    sql = outcomes(ctx, playbook)
    if sql is None:
        return 0
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _act_closed AS
        SELECT e.unit_id, e.entry, min(o.ts) AS ts, arg_min(o.reason, (o.ts, o.reason)) AS reason
        FROM act_entries e JOIN ({sql}) o ON o.unit_id = e.unit_id AND o.ts > e.entered_at
        WHERE e.playbook = {q(playbook.id)} AND e.exited_at IS NULL
        GROUP BY e.unit_id, e.entry""")
    (found,) = con.execute("SELECT count(*) FROM _act_closed").fetchone()
    if found:
        con.execute(f"""UPDATE act_entries SET exited_at = c.ts, exit_reason = c.reason FROM _act_closed c
                        WHERE act_entries.playbook = {q(playbook.id)} AND act_entries.unit_id = c.unit_id
                          AND act_entries.entry = c.entry""")
    con.execute("DROP TABLE _act_closed")
    return found


def _watermark(con, known: dict, playbook: Playbook, now: dt.datetime, dry_run: bool) -> dt.datetime:
    """The stored watermark; at the first evaluation the playbook's `started` day, else the data's time now."""
    stored = known.get(watermark_key(playbook.id))
    if stored is not None:
        return dt.datetime.fromisoformat(stored)
    mark = dt.datetime.combine(playbook.started, dt.time()) if playbook.started else now
    if not dry_run:
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [watermark_key(playbook.id), mark.isoformat()])
    return mark


def evaluate(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition | None, dry_run: bool = False,
             wall_now: dt.datetime | None = None, environ=None, only: list[str] | None = None,
             features: tuple | None = None) -> ActReport:
    """Evaluate every playbook (or those in `only`); record new entries and their actions in one transaction
    (nothing with `dry_run`: the report then lists the entries it would record). `features`: (at, the paying
    accounts' features at `at`) when the refresh's risk scoring computed them on the same data (act.health)."""
    started = time.perf_counter()
    if definition is None or not definition.playbooks:
        return ActReport([], 0.0, dry_run)
    wall_now = wall_now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    runs: list[PlaybookRun] = []
    if not dry_run:
        ensure(con)
        con.begin()
    try:
        known = meta(con)
        chosen = [p for p in definition.playbooks if only is None or p.id in only]
        bands = prepare_inputs(con, definition, chosen, features)
        for playbook in chosen:
            if playbook.entry.health_band is not None and bands is not None:
                runs.append(PlaybookRun(playbook.id, definition.playbook_level(playbook), error=bands))
                continue
            runs.append(_evaluate_one(con, definition, playbook, known, dry_run, wall_now, environ))
        if not dry_run:
            if any(p.entry.health_band is not None for p in chosen) and bands is None:
                health.remember(con, definition)
            con.commit()
    except BaseException:
        if not dry_run:
            con.rollback()
        raise
    return ActReport(runs, round(time.perf_counter() - started, 3), dry_run)


def prepare_inputs(con, definition: JourneyDefinition, playbooks: list[Playbook], features: tuple | None = None
                   ) -> str | None:
    """What the entries read besides the state, made ready: the texts of comment playbooks scored (act.comments)
    and the health bands now (act.health) when a playbook enters on them; returns why the bands cannot be
    (None: ready)."""
    ready = [lv for lv in comments.levels(definition, playbooks) if level_problem(con, definition, lv) is None]
    if ready:
        comments.prepare(con, definition, ready)
    if not any(p.entry.health_band is not None for p in playbooks):
        return None
    # the bands are scored on the account state: on Spark, or with a stale state, the playbook says so
    problem = health.problem(definition) or level_problem(con, definition, "account")
    if problem is None:
        health.prepare(con, definition, features)
    return problem


def _evaluate_one(con, definition, playbook: Playbook, known: dict, dry_run: bool, wall_now, environ) -> PlaybookRun:
    level = definition.playbook_level(playbook)
    run = PlaybookRun(playbook.id, level)
    problem = level_problem(con, definition, level)
    missing = playbook.missing_secrets(environ)
    if missing:
        problem = "; ".join(f"{k}: {m}" for k, m in missing) + " (set it, then refresh: nothing was recorded)"
    if problem:
        run.error = problem
        return run
    now = data_now(con, level)
    if now is None:
        return run
    first = watermark_key(playbook.id) not in known
    watermark = _watermark(con, known, playbook, now, dry_run)
    # the scores' kinds see a snapshot: at the first evaluation, who is at risk now is where the playbook starts
    # from (recorded, not sent), not a change it saw happen
    baseline = first and playbook.entry.kind in SNAPSHOT_KINDS
    run.watermark = watermark.isoformat()
    stored = has_table(con, "act_entries")
    rows = new_entries(con, definition, playbook, now, seeded=stored)
    entries = []
    for row in rows:
        holdout = in_holdout(playbook.id, row["unit_id"], playbook.holdout)
        history = row["ts"] < watermark or baseline
        send = not holdout and not history
        e = Entry(playbook.id, level, row["unit_id"], int(row["entry"]), row["ts"], holdout, row["owner"],
                  reason_of(playbook, row), live=not history)
        if send:
            e.actions = actions_for(playbook, e, wall_now, definition.owner_email)
        entries.append(e)
        run.holdout += holdout
        run.backfill += history
        run.sent += send
    run.entered = len(entries)
    if dry_run:
        run.entries = [{"unit": e.unit_id, "entry": e.entry, "entered_at": e.entered_at, "holdout": e.holdout,
                        "send": not e.holdout and not (e.entered_at < watermark or baseline),
                        "owner": e.owner, "reason": e.reason,
                        "actions": [{"kind": a.kind, "delay_seconds": a.delay_seconds} for a in e.actions]}
                       for e in entries]
        return run
    run.outbox = record(con, entries, wall_now)
    run.closed = close_runs(con, definition, playbook, now)
    effect.store(con, definition, playbook, now, watermark, wall_now)  # measured as data arrives (act.effect)
    return run
