"""Health bands for the `health_band` entry: every paying account's band now, against the band the evaluator saw
at its previous evaluation (table `act_health`), so an entry is a band *change* into the playbook's bands.

The score is journeymap's health score (insights.risk.health: configured components, percentile ranks among
the accounts paying at the day after the latest event); the bands are `health.bands`. An account seen for the
first time has no previous band: it enters when it is in one of the bands (at the first evaluation, the accounts
red now are its starting point, recorded as history by act.evaluate). The previous bands are written in the evaluation's transaction, never by a dry run. The bands are those the
refresh stored with the churn scores (state_health) when current; otherwise computing them reads every account's
features (as scoring the churn model does). A refresh that brought no events and left the health section as it
was reuses the bands of the last evaluation.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import duckdb
import pandas as pd

from journeymap.engine.backends import duckdb_engine
from journeymap.insights.risk.scores import HEALTH, health_stale
from journeymap.ingest.store import has_table
from journeymap.journey.definition import Health, JourneyDefinition
from journeymap.state.fold import meta

DDL = "CREATE TABLE IF NOT EXISTS act_health (unit_id VARCHAR PRIMARY KEY, band VARCHAR NOT NULL, health DOUBLE, scored_at TIMESTAMP NOT NULL)"
NOW = "_act_health_now"
JOURNEY_KEY = "act.health.computed_from"


def problem(definition: JourneyDefinition) -> str | None:
    if definition.revenue is None:
        return "a health_band entry needs `revenue:` in journeymap.yml (the paying accounts are scored)"
    if definition.health is None or not definition.health.components:
        return "a health_band entry needs health.components in journeymap.yml (the configured health score)"
    return None


def prepare(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition, features: tuple | None = None) -> None:
    """Temp table _act_health_now: unit_id, band, health, scored_at, previous (the band at the last evaluation).
    The bands are read from the health scores the refresh stored (insights.risk.stored: state_health) when they
    are current; otherwise scored from `features` (at, the paying accounts' features at `at`, the day after the
    latest event) when the refresh's risk scoring computed them on the same events, else computed here."""
    from journeymap.insights.risk.features import FeatureBuilder
    from journeymap.insights.risk.health import band, configured_components, score

    if meta(con).get(JOURNEY_KEY) == _stamp(con, definition) and _exists(con):
        # nothing changed since the bands were last computed: the same bands, so no change into any
        con.execute(f"CREATE OR REPLACE TEMP TABLE {NOW} AS SELECT unit_id, band, health, scored_at, band AS previous "
                    "FROM act_health")
        return
    if health_stale(con, definition) is None:
        # the refresh scored every paying account under the configured weights (the default options' weights when
        # health.components is given, as it is here: `problem`): the bands `journeymap health` shows
        _now_from(con, f"(SELECT unit_id, health, band, scored_at FROM {HEALTH})")
        return
    if features is not None:
        at, now = features
    else:
        engine = duckdb_engine(con)
        with engine.scope():
            fb = FeatureBuilder(engine, definition, materialize=False)
            last = fb.span()[1]
            if last is None:  # no events left (every load unloaded or erased): no account to score
                con.execute(f"CREATE OR REPLACE TEMP TABLE {NOW} (unit_id VARCHAR, band VARCHAR, health DOUBLE, "
                            "scored_at TIMESTAMP, previous VARCHAR)")
                return
            at = dt.datetime(last.year, last.month, last.day) + dt.timedelta(days=1)
            now = fb.at(at)
    health: Health = definition.health
    now = now[now["paying"]].reset_index(drop=True)
    s = score(now, configured_components(health)) if len(now) else pd.DataFrame({"health": []})
    frame = pd.DataFrame({"unit_id": now["unit_id"].astype(str), "health": s["health"].astype(float),
                          "band": band(s["health"], health.bands) if len(now) else pd.Series([], dtype=str)})
    frame["scored_at"] = at
    con.register("_act_health_frame", frame)
    try:
        _now_from(con, "_act_health_frame")
    finally:
        con.unregister("_act_health_frame")


def _now_from(con: duckdb.DuckDBPyConnection, bands: str) -> None:
    """_act_health_now from `bands` (unit_id, health, band, scored_at) and the bands of the last evaluation."""
    previous = "(SELECT unit_id, band FROM act_health)" if _exists(con) else \
        "(SELECT NULL::VARCHAR AS unit_id, NULL::VARCHAR AS band LIMIT 0)"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {NOW} AS
                    SELECT f.unit_id, f.band, f.health, f.scored_at::TIMESTAMP AS scored_at, p.band AS previous
                    FROM {bands} f LEFT JOIN {previous} p ON p.unit_id = f.unit_id""")


def remember(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition) -> None:
    """Store the bands of _act_health_now as the previous ones of the next evaluation, and what they were
    computed from (the journey version and the health section): a refresh that changed neither reuses them."""
    con.execute(DDL)
    con.execute(f"INSERT OR REPLACE INTO act_health SELECT unit_id, band, health, scored_at FROM {NOW}")
    con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [JOURNEY_KEY, _stamp(con, definition)])


def _stamp(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition) -> str:
    """What the bands are computed from: the accounts' journey events (their count and the XOR of the state's
    per-unit signatures, which change with any event added or removed: state.fold) and the health section.
    (The journey version will not do: identity stitching bumps it at every refresh, new events or not.)"""
    events, signature = con.execute("SELECT sum(events), bit_xor(signature) FROM state_units_account").fetchall()[0]
    digest = hashlib.sha256(definition.model_dump_json(include={"health", "revenue"}).encode()).hexdigest()[:16]
    return f"{events}/{signature}/{digest}"


def _exists(con) -> bool:
    return has_table(con, "act_health")
