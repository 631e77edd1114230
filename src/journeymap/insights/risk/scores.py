"""The stored churn and health scores, read (insights.risk.stored writes them at each refresh): what `journeymap
risk` and `journeymap health` with their default options, the accounts page and the map's accounts at risk show,
without fitting a model or computing a snapshot.

Its own module, below both the model (churn_model, which asks it first) and the refresh (stored, which
writes what it reads), so that neither imports the other both ways.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import duckdb

from journeymap.engine.backends import Engine
from journeymap.ingest.store import has_table
from journeymap.journey.definition import JourneyDefinition
from journeymap.state.fold import JOURNEY_VERSION_KEY, meta

DEFAULT_HORIZON_DAYS = 90
DEFAULT_MODEL = "gbm"
DEFAULT_SEED = 0
DEFAULTS = {"horizon_days": DEFAULT_HORIZON_DAYS, "model": DEFAULT_MODEL, "seed": DEFAULT_SEED}
"""The options of `journeymap risk` without flags, of the map's accounts at risk, and of the model fitted at
refresh time."""

LAYOUT = "1"
"""The stored model's recipe and tables; a model or scores written under another are refitted, never read."""
MODELS = "state_models"
SCORES = "state_risk"
HEALTH = "state_health"
HEALTH_DEFAULTS = {"horizon_days": DEFAULT_HORIZON_DAYS, "weights": "auto", "seed": 0}
"""The options of `journeymap health` without flags: the health weights fitted with the churn model and the
scores written at each refresh are for these."""

IGNORED_SECTIONS = ("name", "engine", "store", "server", "sources", "targets", "risk", "retention", "future_state",
                   "experiments", "playbooks", "owners")
"""journeymap.yml sections no churn feature or health score reads: changing them refits nothing, and the stored
scores stay current (retention changes the data when it drops events, which the journey version follows)."""


def definition_fingerprint(definition: JourneyDefinition) -> str:
    """A hash of the journeymap.yml sections the churn features read (all but IGNORED_SECTIONS)."""
    data = definition.model_dump(mode="json", exclude=set(IGNORED_SECTIONS))
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return has_table(con, table)


def day(ts: dt.datetime) -> str:
    return f"{ts:%Y-%m-%d}"


# -- reading -----------------------------------------------------------------------------------------------


def stored_report(engine: Engine, definition: JourneyDefinition, at: dt.datetime | None = None,
                  horizon_days: int = DEFAULT_HORIZON_DAYS, model: str = DEFAULT_MODEL, seed: int = DEFAULT_SEED,
                  top: int | None = None) -> tuple[dict | None, str | None]:
    """(the stored scores as `risk_report` returns them, None) when they answer these options, else (None, why not)."""
    if engine.name != "duckdb":
        return None, "the Spark engine scores risk when asked"
    asked = {"horizon_days": int(horizon_days), "model": model, "seed": int(seed)}
    other = [f"{k} {asked[k]} (stored: {DEFAULTS[k]})" for k in DEFAULTS if asked[k] != DEFAULTS[k]]
    if other:
        return None, "the stored scores are for the default options, not " + ", ".join(other)
    con = engine.backend.con
    known = meta(con)
    if "risk.model_version" not in known or not exists(con, SCORES) or not exists(con, MODELS):
        return None, "no stored scores yet: each refresh (after ingest) writes them"
    why = _stale(known, definition)
    if why:
        return None, why
    summary = json.loads(known["risk.summary"])
    if at is not None and dt.datetime.fromisoformat(summary["at"]) != at:
        return None, f"the stored scores are at {summary['at'][:10]}, not {at:%Y-%m-%d}"
    version = int(known["risk.model_version"])
    rows = con.execute(f"SELECT fitted_at, trained_through, evaluation FROM {MODELS} WHERE version = ?",
                       [version]).fetchall()
    if not rows:
        return None, f"the stored model version {version} is gone"
    fitted_at, trained_through, evaluation = rows[0]
    limit = f"LIMIT {int(top)}" if top else ""
    rows = con.execute(f"SELECT unit_id, risk, mrr, stage, reasons FROM {SCORES} ORDER BY rank {limit}").fetchall()
    accounts = [{"unit_id": u, "risk": r, "mrr": m, "stage": s, "reasons": json.loads(why)} for u, r, m, s, why in rows]
    refit = definition.risk.refit
    return {
        "at": summary["at"], "horizon_days": DEFAULTS["horizon_days"], "model": DEFAULTS["model"],
        "paying_accounts": summary["paying_accounts"], "mean_risk": summary["mean_risk"], "accounts": accounts,
        "evaluation": json.loads(evaluation), "model_version": version,
        "fitted_at": fitted_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "trained_through": trained_through.isoformat(),
        "scores": "stored",
        "notes": [f"scores written at the last refresh by model version {version}, fitted at "
                  f"{fitted_at:%Y-%m-%d %H:%M} UTC on the events before {day(trained_through)} (refitted every "
                  f"{refit} of the data's time: risk.refit in journeymap.yml); other options fit a model now"],
    }, None


def _stale(known: dict[str, str], definition: JourneyDefinition) -> str | None:
    """Why the scores the last refresh wrote (risk and health, in one transaction) do not answer now, or None."""
    if known.get("risk.layout") != LAYOUT:
        return f"the stored scores have layout {known.get('risk.layout')}; the next refresh rewrites them"
    if known.get("risk.journey") != known.get(JOURNEY_VERSION_KEY, "0"):
        return "events arrived since the stored scores were written"
    if known.get("risk.definition") != definition_fingerprint(definition):
        return "journeymap.yml changed since the stored scores were written"
    return None


def health_stale(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition) -> str | None:
    """Why state_health does not hold the health of the accounts paying now under the default options' weights
    (None: it does)."""
    known = meta(con)
    if "health.summary" not in known or not exists(con, MODELS):
        return "no stored health scores yet: each refresh (after ingest) writes them"
    why = _stale(known, definition)
    if why:
        return why
    summary = json.loads(known["health.summary"])
    version = summary["model_version"]
    if summary.get("error"):
        return f"the health weights could not be fitted with model version {version}: {summary['error']}"
    if not exists(con, HEALTH):
        return "no stored health scores: the next refresh writes them"
    if str(version) != known.get("risk.model_version"):
        return f"the stored health scores are of model version {version}, not the current one"
    return None


def stored_health(engine: Engine, definition: JourneyDefinition, at: dt.datetime | None = None,
                  horizon_days: int = DEFAULT_HORIZON_DAYS, weights: str = "auto", seed: int = 0
                  ) -> tuple[dict | None, str | None]:
    """(the stored health scores as `health_report` returns them, None) when they answer these options, else
    (None, why not). The weights and the backtest are those fitted with the stored churn model, on its
    snapshots; the scores, the paying accounts' features at the last refresh under them."""
    if engine.name != "duckdb":
        return None, "the Spark engine scores health when asked"
    asked = {"horizon_days": int(horizon_days), "weights": weights, "seed": int(seed)}
    # weights: `auto` is config or learned; asking for the one auto chose is the same (checked below)
    other = [f"{k} {asked[k]} (stored: {HEALTH_DEFAULTS[k]})" for k in HEALTH_DEFAULTS
             if asked[k] != HEALTH_DEFAULTS[k] and k != "weights"]
    if other:
        return None, "the stored health scores are for the default options, not " + ", ".join(other)
    con = engine.backend.con
    why = health_stale(con, definition)
    if why:
        return None, why
    summary = json.loads(meta(con)["health.summary"])
    version = summary["model_version"]
    if at is not None and dt.datetime.fromisoformat(summary["at"]) != at:
        return None, f"the stored health scores are at {summary['at'][:10]}, not {at:%Y-%m-%d}"
    rows = con.execute(f"SELECT fitted_at, trained_through, health FROM {MODELS} WHERE version = ?", [version]).fetchall()
    if not rows:
        return None, f"the stored model version {version} is gone"
    fitted_at, trained_through, fitted = rows[0]
    fitted = json.loads(fitted)
    if weights not in ("auto", fitted["source"]):
        return None, f"the stored health scores are for {fitted['source']} weights, not weights {weights}"
    accounts = [{"unit_id": u, "health": h, "band": b, "band_churn_rate": r, "mrr": m, "components": json.loads(c),
                 "expansion": json.loads(x)}
                for u, h, b, r, m, c, x in con.execute(
                    f"SELECT unit_id, health, band, band_churn_rate, mrr, components, expansion FROM {HEALTH} "
                    "ORDER BY rank").fetchall()]
    refit = definition.risk.refit
    return {
        "at": summary["at"], "horizon_days": HEALTH_DEFAULTS["horizon_days"],
        "weights": {"source": fitted["source"], "components": fitted["components"]},
        "bands": summary["bands"], "backtest": fitted["backtest"], "expansion": summary["expansion"],
        "accounts": accounts, "scores": "stored", "model_version": version,
        "notes": [f"scores written at the last refresh; weights and backtest fitted with churn model version {version} "
                  f"at {fitted_at:%Y-%m-%d %H:%M} UTC on the events before {day(trained_through)} (refitted every "
                  f"{refit} of the data's time: risk.refit in journeymap.yml); other options compute them now"],
    }, None


def status(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition | None) -> list[dict]:
    """The stored churn and health scores (`journeymap state`): each {name, table, current, stale_because, rows,
    model_version}; none where no refresh writes them (no journeymap.yml, no `revenue:`, the Spark engine).
    Stale ones are not read: `risk` and `health` compute until the next refresh writes them."""
    if definition is None or definition.revenue is None or definition.engine.backend != "duckdb":
        return []
    known = meta(con)
    version = known.get("risk.model_version")
    out = []
    for name, table in (("churn risk", SCORES), ("health", HEALTH)):
        if version is None or not exists(con, table):
            why = "not written yet: each refresh writes them"
        else:
            why = health_stale(con, definition) if table == HEALTH else _stale(known, definition)
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] if exists(con, table) else None
        out.append({"name": name, "table": table, "current": why is None, "stale_because": why, "rows": rows,
                    "model_version": int(version) if version else None})
    return out
