"""The churn features at the scoring date, folded per account at refresh time instead of computed from every
account's whole history at each refresh.

The features at a date (insights.risk.features) are of two kinds. The "lifetime" aggregates depend on all of an
account's events before the date, but on nothing else: first and last times, key features adopted, the latest
survey answers, the current stage, the early touchpoints, MRR, seats and the customer's start. At the scoring
date of a refresh (the day after the data's latest event) every event counts, so an account's lifetime
aggregates change only when its events do. The "window" aggregates read the 90 days before the date (activity,
active users, tickets, effort, failed payments, downgrades, the texts' sentiment), and the date moves with the
data, so they are computed at each refresh, from the events of those 90 days only.

  state_features_account    per account of state_units_account: its lifetime aggregates (FeatureBuilder.raw's
                            "lifetime" part at the scoring date they were computed for), and the `events` and
                            `signature` of its state_units_account row they were computed from
  state_feature_downgrades_account   unit_id, ts of each revenue event that lowered a non-zero MRR to a
                            non-zero one (a property of the event and its predecessor, so lifetime too)

meta: `features.account.definition` (the churn sections' fingerprint and the layout) and
`features.account.journey` (the journey version they reflect).

Which accounts are read again: those whose count or XOR signature of events differs from the one their row was
computed from (new, late, merged, unloaded, erased, retention-trimmed events all change it); accounts gone from
the state lose their rows; another definition or layout rebuilds both tables. Each account's aggregates depend on
its own events alone, so the fold equals a computation from scratch (tests/test_feature_state.py: random logs in
random batches; tests/test_risk_state.py: the demo three days later). Written in one transaction with the meta
keys.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import ibis
import pandas as pd

from journeymap.engine.annotate import annotation_key
from journeymap.engine.backends import Engine
from journeymap.ingest.store import has_table
from journeymap.insights.risk.churn_model import _day_after
from journeymap.insights.risk.features import DAY, FeatureBuilder, _cutoffs
from journeymap.insights.risk.scores import definition_fingerprint
from journeymap.journey.definition import JourneyDefinition
from journeymap.state.derived import stale_units
from journeymap.state.fold import JOURNEY_VERSION_KEY, meta, tables

FEATURES = "state_features_account"
DOWNGRADES = "state_feature_downgrades_account"
LAYOUT = "1"
"""The tables' columns: features folded under another layout are computed again."""

_DEFINITION_KEY, _JOURNEY_KEY = "features.account.definition", "features.account.journey"
WINDOW_DAYS = 90
"""The longest window a "window" feature reads."""


@dataclass
class FeatureRefresh:
    mode: str
    """rebuild (every account read), fold (the changed accounts only) or unchanged."""
    accounts_read: int
    accounts_dropped: int
    accounts: int
    seconds: float


def _key(definition: JourneyDefinition) -> str:
    return f"{LAYOUT}:{definition_fingerprint(definition)}"


def _units() -> str:
    return tables("account")["units"]


def stale_because(con, definition: JourneyDefinition) -> str | None:
    """Why the folded features do not reflect the account state now, or None when they do."""
    known = meta(con)
    if not (has_table(con, FEATURES) and has_table(con, DOWNGRADES)):
        return "not written yet: each refresh folds them"
    if known.get(_DEFINITION_KEY) != _key(definition):
        return "journeymap.yml (or journeymap) changed since they were folded"
    state = known.get("state.account.journey")
    if state is None or known.get(_JOURNEY_KEY) != state or state != known.get(JOURNEY_VERSION_KEY, "0"):
        return "the journey state moved on since"
    return None


def refresh_features(engine: Engine, definition: JourneyDefinition) -> FeatureRefresh | None:
    """Bring the lifetime aggregates up to the account state (module docstring), in a transaction of their own.
    None when that state is not current or the definition has no `revenue:` (no churn model reads them)."""
    started = time.perf_counter()
    if engine.name != "duckdb" or definition.revenue is None or not _state_current(engine, definition):
        return None
    con = engine.backend.con
    key = _key(definition)
    con.begin()
    try:
        whole = meta(con).get(_DEFINITION_KEY) != key or not (has_table(con, FEATURES) and has_table(con, DOWNGRADES))
        if whole:
            for table in (FEATURES, DOWNGRADES):
                con.execute(f"DROP TABLE IF EXISTS {table}")
        read, dropped = stale_units(con, "account", None if whole else FEATURES, "_features_changed")
        if not whole:
            for table in (FEATURES, DOWNGRADES):
                con.execute(f"DELETE FROM {table} WHERE unit_id IN (SELECT unit_id FROM _features_changed)")
        if read:
            _write(engine, definition, con, whole)
        elif whole:  # no account yet: the tables come with the first, and until then nothing is read
            con.execute(f"DELETE FROM meta WHERE key = '{_DEFINITION_KEY}'")
        con.execute("DROP TABLE _features_changed")
        known = meta(con)
        for k, v in ((_DEFINITION_KEY, key), (_JOURNEY_KEY, known.get("state.account.journey", "0"))):
            if read or not whole:
                con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [k, v])
        (n,) = con.execute(f"SELECT count(*) FROM {FEATURES}").fetchone() if has_table(con, FEATURES) else (0,)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    mode = "rebuild" if whole else ("fold" if read or dropped else "unchanged")
    return FeatureRefresh(mode, int(read), int(dropped), int(n), round(time.perf_counter() - started, 3))


def _state_current(engine: Engine, definition: JourneyDefinition) -> bool:
    return ("account", annotation_key(definition)) in engine.journey


def _write(engine: Engine, definition: JourneyDefinition, con, whole: bool) -> None:
    """The lifetime aggregates and downgrades of the accounts in `_features_changed` still in the state."""
    units = _units()
    ((last,),) = con.execute(f"SELECT max(last_ts) FROM {units}").fetchall()
    with engine.scope():
        ids = None
        if not whole:
            changed = con.sql(f"SELECT unit_id FROM _features_changed WHERE unit_id IN (SELECT unit_id FROM {units})"
                              ).to_arrow_table()
            ids = engine.in_memory(changed)
        fb = FeatureBuilder(engine, definition, materialize=False, units=ids)
        # every event is before the day after the latest: the aggregates of all of each account's events
        life = engine.execute(fb.raw(_cutoffs(engine, [_day_after(last)]), ("lifetime",)).drop("_d"))
        down = engine.execute(fb.downgrades())
    # with the account's state row they were computed from, which the next fold compares
    con.register("_features_rows", life)
    con.register("_features_down", down)
    try:
        rows = f"SELECT f.*, u.events, u.signature FROM _features_rows f JOIN {units} u USING (unit_id)"
        if whole:
            con.execute(f"CREATE TABLE {FEATURES} AS {rows}")
            con.execute(f"CREATE TABLE {DOWNGRADES} AS SELECT unit_id, ts FROM _features_down")
        else:
            con.execute(f"INSERT INTO {FEATURES} BY NAME {rows}")
            con.execute(f"INSERT INTO {DOWNGRADES} SELECT unit_id, ts FROM _features_down")
    finally:
        con.unregister("_features_rows")
        con.unregister("_features_down")


def stored_features(engine: Engine, definition: JourneyDefinition, extra: list
                    ) -> tuple[pd.DataFrame, dt.datetime] | None:
    """(the features of every account at the day after the latest event, as FeatureBuilder.at gives them, that
    date) from the folded lifetime aggregates and the last 90 days' events; None when they are not current."""
    con = engine.backend.con if engine.name == "duckdb" else None
    if con is None or definition.revenue is None or stale_because(con, definition) is not None:
        return None
    ((last,),) = con.execute(f"SELECT max(last_ts) FROM {_units()}").fetchall()
    if last is None:
        return None
    at, since = _day_after(last), _day_after(last) - WINDOW_DAYS * DAY
    with engine.scope():
        fb = FeatureBuilder(engine, definition, extra, materialize=False, since=since, revenue=False)
        window = engine.execute(fb.raw(_cutoffs(engine, [at]), ("window",)).drop("_d")).to_pandas()
        down = engine.table(DOWNGRADES)
        down = down.filter(down.ts >= ibis.literal(since, type="timestamp"))  # all before `at`
        down = down.group_by(_u=down.unit_id).aggregate(downgrades_90d=down.count())
        life = engine.table(FEATURES).drop("events", "signature")
        life = life.left_join(down, life.unit_id == down._u).drop("_u")
        lifetime = engine.execute(life).to_pandas()
    return fb.finish(lifetime.merge(window, on="unit_id", how="left"), at), at


def stored_frame(engine: Engine, definition: JourneyDefinition, extra: list
                 ) -> tuple[pd.DataFrame, dt.datetime, dt.datetime] | None:
    """What churn_model.scoring_frame returns at its default date, from `stored_features`; None when they are
    not current."""
    found = stored_features(engine, definition, extra)
    if found is None:
        return None
    now, at = found
    return now[now["paying"]].reset_index(drop=True), at, at


def erase(con, accounts: list[str]) -> None:
    """Delete these accounts' rows (`journeymap erase`); the refresh that follows folds what is left of them."""
    for table in (FEATURES, DOWNGRADES):
        if has_table(con, table):
            con.execute(f"DELETE FROM {table} WHERE unit_id IN (SELECT unnest(?::VARCHAR[]))", [accounts])


def erase_where(accounts: str) -> dict[str, str]:
    """Per table, the erased accounts' rows as SQL over the table `accounts` of their ids."""
    return {FEATURES: f"unit_id IN (FROM {accounts})", DOWNGRADES: f"unit_id IN (FROM {accounts})"}


def status(con, definition: JourneyDefinition | None) -> list[dict]:
    """The folded features (`journeymap state`), where a refresh writes them: [{name, table, current,
    stale_because, rows, model_version (None)}]."""
    if definition is None or definition.revenue is None or definition.engine.backend != "duckdb" \
            or not has_table(con, FEATURES):
        return []
    why = stale_because(con, definition)
    return [{"name": "churn features (account)", "table": FEATURES, "current": why is None, "stale_because": why,
             "rows": con.execute(f"SELECT count(*) FROM {FEATURES}").fetchone()[0], "model_version": None}]
