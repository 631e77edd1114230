"""Churn risk at refresh time: the churn model refitted on a schedule, every paying account scored at each
refresh, both kept in the store. `journeymap risk` with its default options and the map's accounts at risk
read the scores: building a map fits no model.

After every identity stitch and journey-state fold (`Workspace.refresh`, the server's loader thread),
`refresh_risk` scores every account paying at the day after the data's latest event with the stored model,
refitting it first when

  - there is none, or it cannot be read;
  - it was made by another layout of the model (`LAYOUT`) or another scikit-learn;
  - its options (horizon, estimator, seed: the defaults of `journeymap risk`) differ;
  - journeymap.yml changed in a section the features read (`definition_fingerprint`);
  - it has no health weights (fitted by an earlier journeymap);
  - the data now reaches `risk.refit` (journeymap.yml, default 7d) past the data it was fitted on, or
    ends before it (events were unloaded).

The schedule runs on the data's time (the day after the latest event), not the wall clock: only new data
can make a model stale, so a workspace that receives nothing keeps its model rather than refitting the same
rows to the same numbers; a history loaded in daily batches refits as a live system would have; and a
replay gives the same models. `fitted_at` (wall clock, UTC) is recorded beside it.

Tables (written in one transaction with the meta keys, so a refresh killed half-way leaves the previous
model and scores, which readers then see as stale and compute instead):

  state_models  per fitted model: version, fitted_at, trained_through (the day after the latest event of
                the data it was fitted on), options (JSON: horizon_days, model, seed, layout, scikit_learn),
                definition (fingerprint), split (the train, calibration and held-out dates: its training
                window), evaluation (held-out metrics), features, seconds, model (the pickled ChurnModel).
                The last KEEP_MODELS are kept.
                health (JSON: the health score's weights, `source` config or learned, and its `backtest`,
                fitted on the same snapshots as the model; or the `error` that kept them from being fitted).
  state_risk    per account paying at the scoring date: unit_id, rank (riskiest first), risk, mrr, stage,
                reasons (JSON, for every account), model_version, scored_at (the scoring date).
  state_health  per account paying at the scoring date, under the stored model's health weights: unit_id,
                rank (least healthy first), health, band, band_churn_rate, mrr, components (JSON), expansion
                (JSON), model_version, scored_at.

meta: risk.layout, risk.journey (the journey version scored), risk.definition, risk.model_version,
risk.summary (JSON: at, paying_accounts, mean_risk), health.summary (JSON: at, model_version, bands,
expansion; or model_version and error).

`insights.risk.scores.stored_report` and `stored_health` read them as `risk_report` and `health_report` return
their results, when they are current (the same journey version, definition and layout) and the options are the
defaults; otherwise they say why and the caller computes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import pickle
import time
from dataclasses import dataclass, field, fields

import duckdb
import sklearn

from journeymap.engine.backends import duckdb_engine
from journeymap.insights.risk.churn_model import (
    ChurnModel,
    _utc_now,
    extra_features,
    fit_model,
    ranked_accounts,
    scoring_frame,
)
from journeymap.insights.risk.feature_state import refresh_features, stored_frame
from journeymap.insights.risk.features import snapshots
from journeymap.insights.risk.health import fit_health, scored
from journeymap.insights.voice.text_state import refresh_texts
from journeymap.insights.risk.scores import (
    DEFAULT_HORIZON_DAYS,
    DEFAULT_MODEL,
    DEFAULT_SEED,
    DEFAULTS,
    HEALTH,
    HEALTH_DEFAULTS,
    LAYOUT,
    MODELS,
    SCORES,
    day,
    definition_fingerprint,
    exists,
    stored_report,
)
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.durations import format_duration
from journeymap.state.fold import JOURNEY_VERSION_KEY, meta
from journeymap.state.read import current_tables

log = logging.getLogger("journeymap.risk")

KEEP_MODELS = 5
__all__ = ["DEFAULTS", "HEALTH", "KEEP_MODELS", "LAYOUT", "MODELS", "SCORES", "RiskRefresh", "refresh_risk",
           "stored_report"]


_DDL = f"""
CREATE TABLE IF NOT EXISTS {MODELS} (
    version         INTEGER PRIMARY KEY,
    fitted_at       TIMESTAMP NOT NULL,
    trained_through TIMESTAMP NOT NULL,
    options         VARCHAR NOT NULL,
    definition      VARCHAR NOT NULL,
    split           VARCHAR NOT NULL,
    evaluation      VARCHAR NOT NULL,
    features        VARCHAR NOT NULL,
    seconds         DOUBLE NOT NULL,
    model           BLOB NOT NULL,
    health          VARCHAR
);
-- a table an earlier journeymap created has no health column: its models are refitted (refit_reason)
ALTER TABLE {MODELS} ADD COLUMN IF NOT EXISTS health VARCHAR"""


def model_options(horizon_days: int = DEFAULT_HORIZON_DAYS, model: str = DEFAULT_MODEL, seed: int = DEFAULT_SEED) -> dict:
    return {"horizon_days": int(horizon_days), "model": model, "seed": int(seed), "layout": LAYOUT,
            "scikit_learn": sklearn.__version__}


@dataclass
class RiskRefresh:
    """What a refresh did with the churn model: `model` is refitted, reused or skipped (no scores written),
    or failed (an unexpected error, logged; the previous scores stay, read as stale)."""

    model: str
    reason: str
    model_version: int | None = None
    fitted_at: str | None = None
    trained_through: str | None = None
    scored_at: str | None = None
    accounts: int = 0
    fit_seconds: float = 0.0
    seconds: float = 0.0
    features: tuple | None = field(default=None, repr=False, compare=False)
    """(at, features of the paying accounts at `at`) the scores were computed from: the playbooks' health bands
    in the same refresh read them instead of computing them again (act.health). Not reported."""

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "features"}

    def describe(self) -> str:
        """One line for people, e.g. 'churn model refitted (no model yet): version 1, 851 accounts scored at 2026-11-01'."""
        if self.model in ("skipped", "failed"):
            return f"churn risk {self.model}: {self.reason}"
        return (f"churn model {self.model} ({self.reason}): version {self.model_version}, {self.accounts:,} paying "
                f"accounts scored at {self.scored_at[:10]} in {self.seconds:.1f} s")


def last_model(con: duckdb.DuckDBPyConnection, with_blob: bool = True) -> dict | None:
    """The newest stored model's row (None when there is none)."""
    if not exists(con, MODELS):
        return None
    # every column the table has (a table an earlier journeymap wrote has no health); fetchall: a result left
    # unfinished would block the next query on this connection
    cur = con.execute(f"SELECT * {'' if with_blob else 'EXCLUDE (model)'} FROM {MODELS} ORDER BY version DESC LIMIT 1")
    rows = cur.fetchall()
    return dict(zip([d[0] for d in cur.description], rows[0], strict=True)) if rows else None


def refit_reason(last: dict | None, options: dict, fingerprint: str, end: dt.datetime, refit: str,
                 every: float) -> tuple[str | None, str]:
    """(why the model must be refitted now or None, why it may be reused) for the newest stored model `last`,
    the data ending the day before `end`, and the schedule `refit` (`every` seconds of the data's time)."""
    if last is None:
        return "no model yet", ""
    was = json.loads(last["options"])
    if was.get("layout") != options["layout"]:
        return f"the stored model has layout {was.get('layout')}, this journeymap stores layout {options['layout']}", ""
    if was.get("scikit_learn") != options["scikit_learn"]:
        return f"scikit-learn changed from {was.get('scikit_learn')} to {options['scikit_learn']}", ""
    changed = [f"{k} {was.get(k)} -> {options[k]}" for k in DEFAULTS if was.get(k) != options[k]]
    if changed:
        return "the model options changed: " + ", ".join(changed), ""
    if last["definition"] != fingerprint:
        return "journeymap.yml changed since the model was fitted", ""
    if last.get("health") is None:
        return "the stored model has no health weights (an earlier journeymap fitted it)", ""
    through = last["trained_through"]
    if end < through:
        return (f"the data now ends before the data the model was fitted on (events before {day(end)}, it read "
                f"those before {day(through)}): events were unloaded"), ""
    age = (end - through).total_seconds()
    if age >= every:
        return (f"the data reaches {format_duration(age)} past the events the model was fitted on (those before "
                f"{day(through)}); risk.refit is {refit}"), ""
    since = f"{format_duration(age)} of newer data since" if age else "no newer data since"
    return None, (f"fitted on the events before {day(through)}, {since}; refitted once the data reaches "
                  f"{day(through + dt.timedelta(seconds=every))} (risk.refit {refit})")


def refresh_risk(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition | None,
                 progress=None) -> RiskRefresh | None:
    """Refit the churn model when due (module docstring) and score every paying account with it, writing the
    model, the scores and their meta keys in one transaction. None without a journey definition."""
    started = time.perf_counter()
    if definition is None:
        return None
    if definition.engine.backend != "duckdb":
        return RiskRefresh("skipped", "on the Spark engine, risk is scored when asked (no refresh-time model)")
    if definition.revenue is None:
        return RiskRefresh("skipped", "journeymap.yml defines no churn (no `revenue:` section): there is no churn model")
    if not exists(con, "journey_events"):
        return RiskRefresh("skipped", "no events yet")
    say = progress or (lambda _m: None)
    try:
        return _refresh(con, definition, say, started)
    except ValueError as exc:  # NotEnoughData and the model's own checks: too little history, no churn yet
        return RiskRefresh("skipped", f"the churn model cannot be fitted on this data: {exc}",
                           seconds=round(time.perf_counter() - started, 3))
    except Exception as exc:  # noqa: BLE001 - a failed model must not fail the load that triggered it
        log.exception("scoring churn risk at refresh failed")
        return RiskRefresh("failed", f"{type(exc).__name__}: {exc}; the previous scores are no longer read",
                           seconds=round(time.perf_counter() - started, 3))


def _refresh(con, definition: JourneyDefinition, say, started: float) -> RiskRefresh:
    engine = duckdb_engine(con)
    engine.journey = current_tables(con, definition)
    refresh_texts(engine, definition)  # the texts of the accounts whose events changed, scored for the features
    refresh_features(engine, definition)  # the lifetime aggregates of the accounts whose events changed
    options = model_options()
    fingerprint = definition_fingerprint(definition)
    fit_seconds = 0.0
    with engine.scope():
        extra = extra_features(engine, definition)
        now, at, end = stored_frame(engine, definition, extra) or scoring_frame(engine, definition, extra)
        last = last_model(con)
        why, reuse = refit_reason(last, options, fingerprint, end, definition.risk.refit, definition.risk.refit_seconds)
        fitted: ChurnModel | None = None
        if why is None:
            try:
                fitted = pickle.loads(last["model"])
            except Exception as exc:  # noqa: BLE001 - an unreadable model is refitted, and the report says so
                why = f"the stored model could not be read ({type(exc).__name__}: {exc})"
        if why is not None:
            say("fitting the churn model")
            t = time.perf_counter()
            snaps = snapshots(engine, definition, DEFAULTS["horizon_days"], extra=extra)
            fitted = fit_model(engine, definition, extra, **DEFAULTS, snaps=snaps)
            health_fit = _fit_health(snaps, definition)
            fit_seconds = round(time.perf_counter() - t, 3)
        else:
            health_fit = json.loads(last["health"])
    say("scoring every paying account")
    accounts, risk = ranked_accounts(fitted, now)
    summary = {"at": at.isoformat(), "paying_accounts": int(len(now)),
               "mean_risk": float(risk.mean()) if len(risk) else None}
    con.begin()
    try:
        if why is not None:
            con.execute(_DDL)
            ((version,),) = con.execute(f"SELECT coalesce(max(version), 0) + 1 FROM {MODELS}").fetchall()
            fitted_at = _utc_now()
            con.execute(f"INSERT INTO {MODELS} BY NAME SELECT ?::INTEGER AS version, ?::TIMESTAMP AS fitted_at, "
                        "?::TIMESTAMP AS trained_through, ? AS options, ? AS definition, ? AS split, ? AS evaluation, "
                        "? AS features, ?::DOUBLE AS seconds, ?::BLOB AS model, ? AS health", [
                version, fitted_at.rstrip("Z"), end, json.dumps(options), fingerprint,
                json.dumps(fitted.split_.as_dict()), json.dumps(fitted.evaluation()), json.dumps(fitted.features_),
                fit_seconds, _pickled(fitted), json.dumps(health_fit)])
            con.execute(f"DELETE FROM {MODELS} WHERE version <= ?", [version - KEEP_MODELS])
            trained_through = end
        else:
            version, trained_through = last["version"], last["trained_through"]
            fitted_at = last["fitted_at"].strftime("%Y-%m-%dT%H:%M:%SZ")
        _write_scores(con, accounts, version, at)
        health_summary = _write_health(con, definition, now, health_fit, version, at)
        known = meta(con)
        for key, value in {"risk.layout": LAYOUT, "risk.journey": known.get(JOURNEY_VERSION_KEY, "0"),
                           "risk.definition": fingerprint, "risk.model_version": str(version),
                           "risk.summary": json.dumps(summary), "health.summary": json.dumps(health_summary)}.items():
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return RiskRefresh("refitted" if why is not None else "reused", why or reuse, int(version), fitted_at,
                       trained_through.isoformat(), at.isoformat(), len(accounts), fit_seconds,
                       round(time.perf_counter() - started, 3), features=(at, now))


def _pickled(fitted: ChurnModel) -> bytes:
    """The model without what scoring does not read (held-out rows, the evaluated and baseline estimators)."""
    slim = pickle.loads(pickle.dumps(fitted))
    for name in ("heldout_", "evaluated_", "logistic_"):
        slim.__dict__.pop(name, None)
    return pickle.dumps(slim)


def _write_scores(con, accounts: list[dict], version: int, at: dt.datetime) -> None:
    _write_ranked(con, SCORES, accounts, {"risk": "float64", "mrr": "float64", "stage": "string", "reasons": "json"},
                  version, at)


def _write_ranked(con, table: str, accounts: list[dict], columns: dict[str, str], version: int,
                  at: dt.datetime) -> None:
    """`table`, replaced: one row per account in the order given (`rank` 1 first), its unit_id and `columns`
    (name -> Arrow type, or "json" for a value written as JSON text), with the model version and scoring date."""
    import pyarrow as pa

    rows = {"unit_id": pa.array([a["unit_id"] for a in accounts], pa.string()),
            "rank": pa.array(range(1, len(accounts) + 1), pa.int32())}
    for name, kind in columns.items():
        values = [json.dumps(a[name]) if kind == "json" else a[name] for a in accounts]
        rows[name] = pa.array(values, pa.string() if kind == "json" else pa.type_for_alias(kind))
    con.register("_ranked_rows", pa.table(rows))
    try:
        con.execute(f"""CREATE OR REPLACE TABLE {table} AS
            SELECT *, ?::INTEGER AS model_version, ?::TIMESTAMP AS scored_at FROM _ranked_rows ORDER BY rank""",
                    [version, at])
    finally:
        con.unregister("_ranked_rows")


def _fit_health(snaps, definition: JourneyDefinition) -> dict:
    """The health weights and backtest of `journeymap health` with its defaults, on the model's snapshots; or the
    `error` that keeps them from being fitted (`journeymap health` then computes, and says it)."""
    try:
        return fit_health(snaps, definition, **HEALTH_DEFAULTS)
    except ValueError as exc:  # NotEnoughData among them: learned weights need churn in the training dates
        return {"error": str(exc)}


def _write_health(con, definition: JourneyDefinition, now, health_fit: dict, version: int, at: dt.datetime) -> dict:
    """state_health: the paying accounts `now` scored under the stored health weights; returns health.summary."""
    if "error" in health_fit:
        con.execute(f"DROP TABLE IF EXISTS {HEALTH}")
        return {"model_version": version, "error": health_fit["error"]}
    accounts, bands, expansion = scored(now, definition, health_fit)
    _write_ranked(con, HEALTH, accounts, {"health": "float64", "band": "string", "band_churn_rate": "float64",
                                          "mrr": "float64", "components": "json", "expansion": "json"}, version, at)
    return {"at": at.isoformat(), "model_version": version, "bands": bands, "expansion": expansion}
