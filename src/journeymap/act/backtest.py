"""Replay a playbook over history (`journeymap act backtest`): the entries its rules would have made between two
dates, per week, and what then happened to them (goal reached, exited, churned), from the data as it is now.

The replay is the evaluator's query (act.evaluate.selection_sql) with no stored entries and `now` = the end of
the period: each unit's entries as if the playbook had been evaluated all along. Nothing is written.
"""

from __future__ import annotations

import datetime as dt

from journeymap.act.evaluate import SNAPSHOT_KINDS, data_now, new_entries, prepare_inputs
from journeymap.act.explain import check_level, find_playbook
from journeymap.act.outbox import in_holdout
from journeymap.act.triggers import Context, outcome_sql, q
from journeymap.engine.backends import duckdb_engine
from journeymap.errors import DefinitionError, OptionError
from journeymap.ingest.store import has_table
from journeymap.journey.definition import JourneyDefinition


def backtest(con, definition: JourneyDefinition, playbook_id: str, start: dt.datetime | None = None,
             end: dt.datetime | None = None) -> dict:
    playbook = find_playbook(definition, playbook_id)
    level = definition.playbook_level(playbook)
    check_level(con, definition, level)
    why = prepare_inputs(con, definition, [playbook])
    if why:
        raise DefinitionError("journeymap.yml", [(f"playbooks ({playbook.id}).entry.health_band", why)])
    latest = data_now(con, level)
    end = min(end, latest) if end and latest else (end or latest)
    if start is not None and end is not None and start > end:
        raise OptionError(f"--from {start:%Y-%m-%d} is after --to {end:%Y-%m-%d}", option="from")
    rows = new_entries(con, definition, playbook, end, seeded=False) if end is not None else []
    rows = [r for r in rows if start is None or r["ts"] >= start]
    # one statement whatever the number of entries, none included (executemany refuses an empty list)
    con.execute("""CREATE OR REPLACE TEMP TABLE _act_backtest AS
                   SELECT unnest($unit::VARCHAR[]) AS unit_id, unnest($entry::INTEGER[]) AS entry,
                          unnest($ts::TIMESTAMP[]) AS ts, unnest($holdout::BOOLEAN[]) AS holdout""",
                {"unit": [r["unit_id"] for r in rows], "entry": [int(r["entry"]) for r in rows],
                 "ts": [r["ts"] for r in rows],
                 "holdout": [in_holdout(playbook.id, r["unit_id"], playbook.holdout) for r in rows]})
    ctx = Context(duckdb_engine(con), definition, level, latest or dt.datetime.max)
    churn_stages = [s.id for s in definition.stages if s.kind == "churn"]
    churned = (f"(SELECT unit_id, entered_at AS ts FROM state_visits_{level} WHERE stage IN "
               f"({', '.join(q(s) for s in churn_stages)}))") if churn_stages else \
        "(SELECT NULL::VARCHAR AS unit_id, NULL::TIMESTAMP AS ts LIMIT 0)"
    goal = f"({outcome_sql(ctx, playbook.goal, 'goal')})" if playbook.goal else None
    ex = f"({outcome_sql(ctx, playbook.exit, 'exit')})" if playbook.exit else None
    first = lambda sql: ("NULL::TIMESTAMP" if sql is None else  # noqa: E731
                         f"(SELECT min(o.ts) FROM {sql} o WHERE o.unit_id = b.unit_id AND o.ts > b.ts)")
    weeks = con.execute(f"""
        WITH o AS (SELECT b.*, {first(goal)} AS goal_at, {first(ex)} AS exit_at, {first(churned)} AS churned_at
                   FROM _act_backtest b)
        SELECT date_trunc('week', ts)::DATE AS week, count(*) AS entered, count(DISTINCT unit_id) AS units,
               count(*) FILTER (WHERE holdout) AS holdout,
               count(*) FILTER (WHERE goal_at IS NOT NULL AND (exit_at IS NULL OR goal_at <= exit_at)) AS goal_reached,
               count(*) FILTER (WHERE exit_at IS NOT NULL AND (goal_at IS NULL OR exit_at < goal_at)) AS exited,
               count(*) FILTER (WHERE churned_at IS NOT NULL) AS churned,
               median(epoch(goal_at) - epoch(ts)) / 86400 AS median_days_to_goal
        FROM o GROUP BY 1 ORDER BY 1""").fetchall()
    con.execute("DROP TABLE _act_backtest")
    cols = ("week", "entered", "units", "holdout", "goal_reached", "exited", "churned", "median_days_to_goal")
    out = [dict(zip(cols, w, strict=True)) for w in weeks]
    total = {k: sum(w[k] for w in out) for k in cols[1:-1]}
    total["goal_rate"] = total["goal_reached"] / total["entered"] if total["entered"] else None
    total["churn_rate"] = total["churned"] / total["entered"] if total["entered"] else None
    note = None
    if playbook.entry.kind in SNAPSHOT_KINDS:  # the scores are kept as of the latest refresh only
        (recorded,) = con.execute("SELECT count(*) FROM act_entries WHERE playbook = ?", [playbook.id]).fetchone() \
            if has_table(con, "act_entries") else (0,)
        note = (f"entry.{playbook.entry.kind} reads the latest refresh's scores, and no history of them is kept, so "
                f"the replay sees only what changed since the playbook was last evaluated; {recorded:,} "
                f"{'entry was' if recorded == 1 else 'entries were'} recorded as the refreshes evaluated it "
                f"(`journeymap act show {playbook.id}`)")
    return {"playbook": playbook.id, "level": level, "from": start, "to": end, "data_through": latest,
            "goal": playbook.goal.model_dump(mode="json", exclude_none=True, exclude_defaults=True) if playbook.goal else None,
            "weeks": out, "total": total, "note": note}
