"""The improvements of a workspace, stored in its DuckDB store (created on demand, like act/'s tables).

  improvements         one row per improvement: what, where (stage, persona), who owns it, its status, the
                       metric it should move and the target value, when it shipped
  improvement_history  one row per change of status (and the first one, at creation): from, to, when, note

Both are ordinary tables of the store, so `journeymap backup` copies them (COPY FROM DATABASE) and `restore`
brings them back. Every check against journeymap.yml (stage, persona, metric, status) says what is known and
"did you mean" for a misspelt name.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import unicodedata
from dataclasses import asdict, dataclass, field

import duckdb

from journeymap.errors import InputError, OptionError
from journeymap.ingest.store import has_table
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.targets import DURATION_METRICS, RATE_METRICS, Target

STATUSES = ("idea", "planned", "in progress", "shipped", "dropped")
METRICS = tuple(Target.model_fields["metric"].annotation.__args__)  # the metrics targets know
STAGE_METRICS = frozenset({"conversion", "reached", "time_in_stage_p50", "time_in_stage_p90"})
"""Metrics that are measured at a stage: the improvement's stage."""
SOURCES = ("team", "data", "manual")

DDL = """
CREATE TABLE IF NOT EXISTS improvements (
    id VARCHAR PRIMARY KEY,            -- a slug of the title unless given: onboarding-checklist
    title VARCHAR NOT NULL,
    stage VARCHAR NOT NULL,            -- a stage id of journeymap.yml
    persona VARCHAR,                   -- a persona id, or null: every unit
    owner VARCHAR,
    status VARCHAR NOT NULL,           -- idea, planned, in progress, shipped, dropped
    metric VARCHAR NOT NULL,           -- one of the targets' metrics (docs/journey-definition.md)
    feature VARCHAR,                   -- the key feature, for metric adoption
    target VARCHAR,                    -- the target value as written: 35%, 3d, 40
    target_value DOUBLE,               -- in the metric's unit: percent for rates, seconds, points, CES scale
    comparison VARCHAR,                -- stage:ID or persona:ID the improvement should not affect, or null
    ship_date DATE,
    source VARCHAR NOT NULL,           -- team (an opportunity of journeymap.yml), data (a map opportunity), manual
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS improvement_history (
    improvement_id VARCHAR NOT NULL,
    seq INTEGER NOT NULL,              -- 1 for the creation, then 2, ...
    changed_at TIMESTAMP NOT NULL,     -- wall clock of the change
    from_status VARCHAR,               -- null at creation
    to_status VARCHAR NOT NULL,
    ship_date DATE,
    note VARCHAR,                      -- what else changed, e.g. "owner: Ann -> Bob"
    PRIMARY KEY (improvement_id, seq)
);
"""

_COLUMNS = ("id", "title", "stage", "persona", "owner", "status", "metric", "feature", "target", "target_value",
            "comparison", "ship_date", "source", "created_at", "updated_at")


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    """Create the improvement tables if the store has none yet (a store made before them has none)."""
    con.execute(DDL)


@dataclass
class Improvement:
    id: str
    title: str
    stage: str
    persona: str | None
    owner: str | None
    status: str
    metric: str
    feature: str | None
    target: str | None
    target_value: float | None
    comparison: str | None
    ship_date: dt.date | None
    source: str
    created_at: dt.datetime
    updated_at: dt.datetime
    history: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = asdict(self)
        for k in ("ship_date", "created_at", "updated_at"):
            d[k] = None if d[k] is None else d[k].isoformat()
        return d


# -- validation ------------------------------------------------------------------------------------------

def did_you_mean(given: str, known, what: str) -> str:
    """"; did you mean 'x'?" for the closest known names, else the known names."""
    known = [str(k) for k in known]
    close = difflib.get_close_matches(str(given), known, n=2, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return f"{what} are " + ", ".join(repr(k) for k in known) if known else f"there are no {what}"


def check_status(status: str) -> str:
    s = status.strip().lower().replace("_", " ").replace("-", " ")
    if s not in STATUSES:
        raise OptionError(f"--status: unknown status {status!r}; {did_you_mean(s, STATUSES, 'statuses')}",
                          option="status")
    return s


def check_stage(definition: JourneyDefinition, stage: str) -> str:
    ids = [s.id for s in definition.stages]
    if stage not in ids:
        raise OptionError(f"--stage: unknown stage {stage!r}; {did_you_mean(stage, ids, 'stages')}", option="stage")
    return stage


def check_persona(definition: JourneyDefinition, persona: str | None) -> str | None:
    if persona is None:
        return None
    ids = [p.id for p in definition.personas]
    if persona not in ids:
        raise OptionError(f"--persona: unknown persona {persona!r}; {did_you_mean(persona, ids, 'personas')}",
                          option="persona")
    return persona


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise OptionError(f"--metric: unknown metric {metric!r}; {did_you_mean(metric, METRICS, 'metrics')}",
                          option="metric")
    return metric


def check_feature(definition: JourneyDefinition, metric: str, feature: str | None) -> str | None:
    ids = [f.id for f in definition.milestones.key_features]
    if metric == "adoption" and feature is None:
        raise OptionError(f"--feature: metric adoption needs the key feature it measures; features are {ids}",
                          option="feature")
    if feature is not None and feature not in ids:
        raise OptionError(f"--feature: unknown key feature {feature!r}; {did_you_mean(feature, ids, 'key features')}",
                          option="feature")
    return feature


def target_value(metric: str, target: str | None) -> float | None:
    """The target in the metric's unit (percent for rates, seconds for durations), checked as the `targets:`
    section checks its values: `Target.value_problem` (a rate of 40 is refused with "did you mean 0.4?")."""
    if target is None:
        return None
    text = target.strip()
    try:
        value: float | str = float(text)
    except ValueError:
        value = text
    t = Target(metric=metric, op=">=", value=value, stage="x" if metric in STAGE_METRICS else None,
               feature="x" if metric == "adoption" else None)
    problem = t.value_problem()
    if problem:
        raise OptionError(f"--target: {problem}", option="target")
    return t.numeric_value()


def check_comparison(definition: JourneyDefinition, comparison: str | None, metric: str | None = None) -> str | None:
    """`stage:ID` or `persona:ID` (`none` clears it). A stage comparison needs a metric measured per stage (or a
    survey score, read in that stage)."""
    if comparison is None or comparison.strip().lower() == "none":
        return None
    kind, _, ident = comparison.strip().partition(":")
    known = {"stage": [s.id for s in definition.stages], "persona": [p.id for p in definition.personas]}
    if kind not in known or not ident:
        raise OptionError(f"--compare: write stage:ID or persona:ID, not {comparison!r}", option="compare")
    if ident not in known[kind]:
        raise OptionError(f"--compare: unknown {kind} {ident!r}; {did_you_mean(ident, known[kind], kind + 's')}",
                          option="compare")
    if kind == "stage" and metric is not None and metric not in STAGE_METRICS | {"nps", "csat", "ces"}:
        raise OptionError(f"--compare stage:{ident}: {metric} is not measured per stage; compare against a "
                          "persona (persona:ID) instead", option="compare")
    return f"{kind}:{ident}"


def check_date(text: str | dt.date | None, option: str = "ship-date") -> dt.date | None:
    if text is None or isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise OptionError(f"--{option}: {text!r} is not a date; write YYYY-MM-DD", option=option) from None


def slug(title: str) -> str:
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    words = re.findall(r"[a-z0-9]+", text)[:6]
    return "-".join(words) or "improvement"


def unit_of(metric: str) -> str:
    if metric in RATE_METRICS:
        return "percentage points"
    if metric in DURATION_METRICS:
        return "seconds"
    return "points" if metric == "nps" else "scale points"


# -- reading and writing ---------------------------------------------------------------------------------

def _row(con, row) -> Improvement:
    imp = Improvement(**dict(zip(_COLUMNS, row, strict=True)))
    imp.history = [
        {"seq": seq, "at": at.isoformat(), "from": f, "to": t, "ship_date": None if d is None else d.isoformat(),
         "note": note}
        for seq, at, f, t, d, note in con.execute(
            "SELECT seq, changed_at, from_status, to_status, ship_date, note FROM improvement_history"
            " WHERE improvement_id = ? ORDER BY seq", [imp.id]).fetchall()
    ]
    return imp


def list_improvements(con: duckdb.DuckDBPyConnection, status: str | None = None, stage: str | None = None
                      ) -> list[Improvement]:
    ensure(con)
    where, args = [], []
    if status is not None:
        where.append("status = ?")
        args.append(check_status(status))
    if stage is not None:
        where.append("stage = ?")
        args.append(stage)
    sql = f"SELECT {', '.join(_COLUMNS)} FROM improvements"
    sql += (" WHERE " + " AND ".join(where)) if where else ""
    return [_row(con, r) for r in con.execute(sql + " ORDER BY created_at, id", args).fetchall()]


def stored(con: duckdb.DuckDBPyConnection) -> list[Improvement]:
    """Every improvement, without creating the tables where there are none (readers such as the map)."""
    if not has_table(con, "improvements"):
        return []
    return list_improvements(con)


def get(con: duckdb.DuckDBPyConnection, improvement_id: str) -> Improvement:
    ensure(con)
    row = con.execute(f"SELECT {', '.join(_COLUMNS)} FROM improvements WHERE id = ?", [improvement_id]).fetchone()
    if row is None:
        ids = [r[0] for r in con.execute("SELECT id FROM improvements ORDER BY id").fetchall()]
        hint = did_you_mean(improvement_id, ids, "improvements") if ids else (
            "there are none yet: add one with `journeymap improvements add`")
        raise InputError(f"no improvement {improvement_id!r}; {hint}")
    return _row(con, row)


def opportunity_titles(definition: JourneyDefinition) -> dict[str, list[str]]:
    """The team's opportunities of journeymap.yml, per stage."""
    return {s.id: list(s.opportunities) for s in definition.stages if s.opportunities}


def add(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition, *, title: str, stage: str, metric: str,
        owner: str | None = None, status: str = "idea", persona: str | None = None, feature: str | None = None,
        target: str | None = None, comparison: str | None = None, ship_date: str | dt.date | None = None,
        source: str = "manual", improvement_id: str | None = None, now: dt.datetime | None = None,
        today: dt.date | None = None) -> tuple[Improvement, str | None]:
    """Store a new improvement; returns it and a note to show (e.g. "ship date: today, 2026-12-04")."""
    ensure(con)
    title = title.strip()
    if not title:
        raise OptionError("--title must not be empty", option="title")
    check_stage(definition, stage)
    check_metric(metric)
    persona = check_persona(definition, persona)
    feature = check_feature(definition, metric, feature)
    status = check_status(status)
    value = target_value(metric, target)
    comparison = check_comparison(definition, comparison, metric)
    ship, note = _ship_date(status, check_date(ship_date), today)
    if source not in SOURCES:
        raise OptionError(f"source must be one of {SOURCES}, not {source!r}", option="source")
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if improvement_id is None:
        base = slug(title)
        taken = {r[0] for r in con.execute("SELECT id FROM improvements WHERE id = ? OR id LIKE ?",
                                           [base, base + "-%"]).fetchall()}
        improvement_id, n = base, 2
        while improvement_id in taken:
            improvement_id, n = f"{base}-{n}", n + 1
    else:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", improvement_id):
            raise OptionError(f"--id {improvement_id!r}: use lower-case letters, digits, - and _", option="id")
        if con.execute("SELECT 1 FROM improvements WHERE id = ?", [improvement_id]).fetchone():
            raise OptionError(f"--id: an improvement {improvement_id!r} already exists", option="id")
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"INSERT INTO improvements ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                    [improvement_id, title, stage, persona, owner, status, metric, feature,
                     None if target is None else target.strip(), value, comparison, ship, source, now, now])
        con.execute("INSERT INTO improvement_history VALUES (?, 1, ?, NULL, ?, ?, ?)",
                    [improvement_id, now, status, ship, "created" + (f" ({note})" if note else "")])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return get(con, improvement_id), note


def promote(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition, stage: str, opportunity: str,
            *, metric: str, **fields) -> tuple[Improvement, str | None]:
    """An opportunity of the map made an improvement, keeping its text and stage. `opportunity` is its text,
    or its 1-based number among the stage's opportunities in journeymap.yml."""
    check_stage(definition, stage)
    known = opportunity_titles(definition).get(stage, [])
    source = "data"
    if opportunity.isdigit() and known:
        i = int(opportunity)
        if not 1 <= i <= len(known):
            raise OptionError(f"--opportunity {i}: stage {stage!r} has {len(known)} opportunities in journeymap.yml",
                              option="opportunity")
        opportunity, source = known[i - 1], "team"
    elif opportunity in known:
        source = "team"
    return add(con, definition, title=opportunity, stage=stage, metric=metric, source=source, **fields)


def _ship_date(status: str, ship: dt.date | None, today: dt.date | None) -> tuple[dt.date | None, str | None]:
    if status == "shipped" and ship is None:
        today = today or dt.datetime.now(dt.UTC).date()
        return today, f"no --ship-date given: shipped today, {today.isoformat()}"
    return ship, None


def update(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition, improvement_id: str, *,
           now: dt.datetime | None = None, today: dt.date | None = None, **changes) -> tuple[Improvement, str | None]:
    """Change the fields given (None: unchanged); a status change is written to the history. Shipping
    without a ship date uses today, and says so (the returned note)."""
    current = get(con, improvement_id)
    changes = {k: v for k, v in changes.items() if v is not None}
    unknown = set(changes) - {"title", "stage", "persona", "owner", "status", "metric", "feature", "target",
                              "comparison", "ship_date"}
    if unknown:
        raise OptionError(f"cannot change {', '.join(sorted(unknown))}", option=sorted(unknown)[0])
    if not changes:
        raise OptionError("nothing to change: give --status, --owner, --ship-date, --target, ...", option="status")
    new = {k: getattr(current, k) for k in ("title", "stage", "persona", "owner", "status", "metric", "feature",
                                            "target", "comparison", "ship_date")}
    if "persona" in changes and str(changes["persona"]).lower() == "none":
        changes["persona"] = None
        new["persona"] = None
    new.update(changes)
    check_stage(definition, new["stage"])
    check_metric(new["metric"])
    new["persona"] = check_persona(definition, new["persona"])
    new["feature"] = check_feature(definition, new["metric"], new["feature"])
    new["status"] = check_status(new["status"])
    new["comparison"] = check_comparison(definition, new["comparison"], new["metric"])
    new["ship_date"] = check_date(new["ship_date"])
    value = target_value(new["metric"], new["target"])
    note = None
    if new["status"] == "shipped" and new["ship_date"] is None:
        new["ship_date"], note = _ship_date("shipped", None, today)
    elif new["status"] == "shipped" and current.status != "shipped" and "ship_date" not in changes:
        note = f"no --ship-date given: shipped on the ship date already stored, {new['ship_date'].isoformat()}"
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    said = [f"{k}: {getattr(current, k)} -> {new[k]}" for k in ("title", "stage", "persona", "owner", "metric",
                                                               "feature", "target", "comparison", "ship_date")
            if k in changes and getattr(current, k) != new[k]]
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "UPDATE improvements SET title = ?, stage = ?, persona = ?, owner = ?, status = ?, metric = ?, feature = ?,"
            " target = ?, target_value = ?, comparison = ?, ship_date = ?, updated_at = ? WHERE id = ?",
            [new["title"], new["stage"], new["persona"], new["owner"], new["status"], new["metric"], new["feature"],
             new["target"], value, new["comparison"], new["ship_date"], now, improvement_id])
        if new["status"] != current.status or said:
            seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM improvement_history WHERE improvement_id = ?",
                              [improvement_id]).fetchone()[0]
            text = "; ".join([*said, *([note] if note else [])]) or None
            con.execute("INSERT INTO improvement_history VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [improvement_id, seq, now, current.status, new["status"], new["ship_date"], text])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return get(con, improvement_id), note
