"""Why a unit entered a playbook, or which condition kept it out, at a given time (`journeymap explain`).

The replay is the evaluator's own query (act.evaluate.selection_sql) restricted to the one unit and to the
data up to `at`, without the stored entries: what the playbook's rules give for that unit then. The stored
entries (what the refreshes actually recorded, with their holdout and whether they were sent) are shown beside.
`dry_run` is the same question for every unit at once: who would enter each playbook now (`journeymap act --dry-run`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import json

from journeymap.act.evaluate import data_now, evaluate, level_problem, new_entries, prepare_inputs, reason_of
from journeymap.act.outbox import in_holdout
from journeymap.act.triggers import Context, audience_base, audience_checks, candidates, owner_sql, q
from journeymap.engine.backends import duckdb_engine
from journeymap.errors import DefinitionError, OptionError, WorkspaceError
from journeymap.ingest.store import has_table
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.durations import parse_duration
from journeymap.journey.playbooks import Playbook


def find_playbook(definition: JourneyDefinition, playbook_id: str) -> Playbook:
    try:
        return definition.playbook(playbook_id)
    except KeyError:
        known = [p.id for p in definition.playbooks]
        near = difflib.get_close_matches(playbook_id, known, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else f" (playbooks: {', '.join(known) or 'none in journeymap.yml'})"
        raise OptionError(f"--playbook: no playbook {playbook_id!r}{hint}", option="playbook") from None


def dry_run(con, definition: JourneyDefinition, playbook: str | None = None) -> dict:
    """Who would enter each playbook (or `playbook`) at the next refresh, and why: the evaluation with nothing
    recorded or sent (act.evaluate). It still folds the comment playbooks' texts (act.comments.prepare), so the
    server runs it in a transaction it rolls back (server/admin.py)."""
    if playbook is not None:
        find_playbook(definition, playbook)
    return evaluate(con, definition, dry_run=True, only=[playbook] if playbook else None).to_dict()


def check_level(con, definition: JourneyDefinition, level: str) -> None:
    problem = level_problem(con, definition, level)
    if problem:
        raise WorkspaceError(problem)


def find_unit(con, level: str, unit: str) -> None:
    if con.execute(f"SELECT 1 FROM state_units_{level} WHERE unit_id = ?", [unit]).fetchall():
        return
    like = con.execute(f"SELECT unit_id FROM state_units_{level} WHERE unit_id ILIKE ? LIMIT 2000",
                       [f"%{unit[-6:]}%"]).fetchall() or con.execute(
        f"SELECT unit_id FROM state_units_{level} LIMIT 5000").fetchall()
    near = difflib.get_close_matches(unit, [r[0] for r in like], n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise OptionError(f"UNIT: no {level} {unit!r} in the journey state{hint}", option="unit")


def _rows(con, sql: str) -> list[dict]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def explain(con, definition: JourneyDefinition, playbook_id: str, unit: str, at: dt.datetime | None = None) -> dict:
    playbook = find_playbook(definition, playbook_id)
    level = definition.playbook_level(playbook)
    check_level(con, definition, level)
    why = prepare_inputs(con, definition, [playbook])
    if why:
        raise DefinitionError("journeymap.yml", [(f"playbooks ({playbook.id}).entry.health_band", why)])
    find_unit(con, level, unit)
    now = at or data_now(con, level)
    ctx = Context(duckdb_engine(con), definition, level, now, unit)
    cand_sql = candidates(ctx, playbook)
    cands = _rows(con, f"SELECT * FROM ({owner_sql(ctx, playbook, cand_sql)}) ORDER BY ts LIMIT 50")
    conditions = [{"condition": f"entry.{playbook.entry.kind}", "holds": bool(cands),
                   "moments": len(cands),
                   "first": [{"at": c["ts"], "values": json.loads(c["detail"])} for c in cands[:5]]}]
    if not cands and playbook.entry.absence is not None:
        conditions[0]["why_not"] = _absence_why(con, ctx, playbook)
    if cands:
        base = audience_base(ctx, playbook, cand_sql)
        for name, test in audience_checks(ctx, playbook):
            passing = con.execute(f"SELECT count(*) FROM ({base}) WHERE {test}").fetchone()[0]
            first = con.execute(f"SELECT persona, plan, mrr, owner FROM ({base}) ORDER BY ts LIMIT 1").fetchone()
            conditions.append({"condition": name, "holds": passing > 0, "moments": passing,
                               "values": dict(zip(("persona", "plan", "mrr", "owner"), first, strict=True))})
    replay = new_entries(con, definition, playbook, now, seeded=False, unit=unit)
    entries = [{"entry": int(r["entry"]), "entered_at": r["ts"], "owner": r["owner"],
                "holdout": in_holdout(playbook.id, unit, playbook.holdout), "reason": reason_of(playbook, r)}
               for r in replay]
    stored = []
    if has_table(con, "act_entries"):
        stored = _rows(con, f"SELECT entry, entered_at, holdout, owner, sent, exited_at, exit_reason, recorded_at "
                            f"FROM act_entries WHERE playbook = {q(playbook.id)} AND unit_id = {q(unit)} "
                            f"AND entered_at <= {q(now)} ORDER BY entry")
    failed = next((c["condition"] for c in conditions if not c["holds"]), None)
    if entries:
        verdict = f"entered {len(entries)} time{'s' if len(entries) != 1 else ''}; last at {entries[-1]['entered_at']}"
    elif failed:
        verdict = f"not entered: {failed} does not hold"
    else:
        verdict = "not entered: the re-entry rules (cooldown, max entries) allow no entry"
    return {"playbook": playbook.id, "unit": unit, "level": level, "at": now, "entered": bool(entries),
            "verdict": verdict, "failed_condition": None if entries else failed, "conditions": conditions,
            "entries": entries, "stored_entries": stored,
            "reentry": {"cooldown": playbook.reentry.cooldown, "max_entries": playbook.reentry.max_entries}}


def _absence_why(con, ctx: Context, playbook: Playbook) -> list[dict]:
    """Per `did` event of the unit: when `not_did` followed (within the window: kept out), or that the window
    is not over yet at `at`."""
    a = playbook.entry.absence
    n = parse_duration(a.within)
    rows = con.execute(f"""
        SELECT x.ts, min(y.ts) FROM ({ctx.rule_events(a.did)}) x
        LEFT JOIN ({ctx.rule_events(a.not_did)}) y ON y.unit_id = x.unit_id AND y.ts > x.ts
        GROUP BY x.ts ORDER BY x.ts LIMIT 10""").fetchall()
    out = []
    for did_at, followed in rows:
        window_end = did_at + dt.timedelta(seconds=n)
        if followed is not None and followed <= window_end:
            out.append({"did_at": did_at, "not_did_at": followed, "why": f"not_did happened within {a.within}"})
        else:
            out.append({"did_at": did_at, "window_ends": window_end,
                        "why": f"the {a.within} window is not over at {ctx.now}"})
    if not rows:
        out.append({"why": "no event matching entry.absence.did"})
    return out
