"""Differential suite for the insights: churn risk, health, moments of truth, friction, CLV and voice of
the customer on DuckDB and on Spark (docs/spark.md, "The insights on Spark").

One small simulated business (journeymap demo, 60 accounts, seed 7: about 32k events, with churn in the
churn model's training dates) is ingested into a DuckDB workspace, its journey tables are exported to
Parquet, and every insight runs on both engines with the same arguments. The whole result must be the
same (`spark_compare.same`: counts, strings and dates exactly, percentiles exactly, other floats within
1e-9 relative), and so must the point-in-time feature tables the churn model and the health score are
fitted on: the models are fitted in Python (scikit-learn, seeded), so identical features in the same row
order give the identical fit, and nothing here is compared more loosely than the engine analyses.
Friction also runs on a second business (60 accounts, seed 3) whose items' stages are ties.
"""

from __future__ import annotations

import math
import time
from collections import Counter

import pandas as pd
import pytest
from spark_compare import same

import journeymap.insights.risk.features as features_module
import journeymap.insights.friction as friction_module
from journeymap.engine.backends import spark_engine
from journeymap.engine.spark_backend import export_journey_tables
from journeymap.insights.risk.churn_model import risk_report
from journeymap.insights.friction import friction
from journeymap.insights.risk.health import health_report
from journeymap.insights.value.clv import lifetime_value
from journeymap.insights.moments import moments_of_truth
from journeymap.insights.voice.texts import GROUPS, voice
from journeymap.workspace import Workspace

pytestmark = pytest.mark.spark

ACCOUNTS, SEED = 60, 7
SECONDS: dict[str, float] = {}  # insight -> seconds on Spark, printed at the end of the module (pytest -s)


@pytest.fixture(scope="module")
def duck(ingested_demo):
    ws = Workspace(ingested_demo(ACCOUNTS, SEED).workspace)
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def tables(duck, tmp_path_factory):
    return export_journey_tables(duck.con, tmp_path_factory.mktemp("parquet"))


@pytest.fixture(scope="module")
def spark(spark_session, tables):
    yield spark_engine(spark_session, tables)
    if SECONDS:
        print("\nseconds on Spark:", {k: round(v, 1) for k, v in SECONDS.items()})


def both(name: str, duck, spark, run):
    """run(engine, definition) on DuckDB, then on Spark (timed)."""
    on_duck = run(duck.engine, duck.definition)
    t0 = time.perf_counter()
    on_spark = run(spark, duck.definition)
    SECONDS[name] = time.perf_counter() - t0
    return on_duck, on_spark


def frame(df: pd.DataFrame) -> dict:
    """A feature table as {column: [values]} with Python scalars (NaN and NaT as None), for `same`."""
    out = {}
    for c in df.columns:
        values = df[c].astype(object).tolist()
        out[c] = [None if v is None or v is pd.NaT or (isinstance(v, float) and math.isnan(v)) else
                  v.to_pydatetime() if isinstance(v, pd.Timestamp) else v for v in values]
    return out


@pytest.fixture
def feature_tables(monkeypatch):
    """Every `snapshots` table an insight computes, in call order (risk and health fit their models on these)."""
    seen: list[pd.DataFrame] = []
    real = features_module.snapshots

    def spy(*args, **kwargs):
        df = real(*args, **kwargs)
        seen.append(df.copy())
        return df

    monkeypatch.setattr(features_module, "snapshots", spy)
    return seen


def test_churn_risk_identical_on_spark(duck, spark, feature_tables):
    on_duck, on_spark = both("risk", duck, spark, lambda e, d: risk_report(e, d, None, 90, "gbm", None, 0, stored=False))
    duck_features, spark_features = feature_tables
    assert list(duck_features.columns) == list(spark_features.columns)
    assert "sentiment" in duck_features and duck_features["sentiment"].notna().any()  # the text feature hook ran
    same(frame(duck_features), frame(spark_features), "snapshots")
    on_duck.pop("fitted_at"), on_spark.pop("fitted_at")  # the wall-clock time of each fit
    same(on_duck, on_spark, "risk")
    # non-trivial: several dates with churn to learn from, and accounts ranked by different risks
    assert duck_features["at"].nunique() >= 6 and duck_features["churned"].sum() >= 3
    risks = [a["risk"] for a in on_duck["accounts"]]
    assert len(risks) >= 10 and len(set(risks)) >= 5 and risks == sorted(risks, reverse=True)
    assert any(a["reasons"] for a in on_duck["accounts"])


def test_health_identical_on_spark(duck, spark, feature_tables):
    on_duck, on_spark = both("health", duck, spark, lambda e, d: health_report(e, d, None, 90, "auto", stored=False))
    same(frame(feature_tables[0]), frame(feature_tables[1]), "snapshots")
    same(on_duck, on_spark, "health")
    healths = [a["health"] for a in on_duck["accounts"]]
    assert len(healths) >= 10 and len(set(healths)) >= 5
    assert on_duck["backtest"]["rows"] > 0 and sum(b["accounts"] for b in on_duck["bands"]) == len(healths)


def test_moments_of_truth_identical_on_spark(duck, spark):
    # min_units 5: at 60 accounts the default 30 would rank nothing, and ranking (q-values, Holm) is compared too
    on_duck, on_spark = both("moments", duck, spark, lambda e, d: moments_of_truth(e, d, None, 14, 90, min_units=5))
    same(on_duck, on_spark, "moments")
    assert on_duck["units"]["analysed"] >= 10 and 0 < on_duck["units"]["retained"] < on_duck["units"]["analysed"]
    assert len(on_duck["moments"]) > 10 and sum(r["ranked"] for r in on_duck["moments"]) >= 2
    assert on_duck["excluded"]


def test_friction_identical_on_spark(duck, spark):
    on_duck, on_spark = both("friction", duck, spark, lambda e, d: friction(e, d))
    same(on_duck, on_spark, "friction")
    kinds = {i["kind"] for i in on_duck["friction"]}
    assert len(on_duck["friction"]) >= 5 and on_duck["delight"]
    # A touchpoint rated mostly well is delight, not friction (one side per touchpoint): the demo's are.
    assert {"drop_off", "slow_stage", "negative_theme"} <= kinds
    assert any(i["mrr_at_stake"] for i in on_duck["friction"])


def test_lifetime_value_identical_on_spark(duck, spark):
    on_duck, on_spark = both("clv", duck, spark, lambda e, d: lifetime_value(e, d))
    same(on_duck, on_spark, "clv")
    assert on_duck["accounts"] >= 10 and on_duck["cohorts"] >= 3 and on_duck["clv"] > 0
    assert len(on_duck["segments"]["channel"]) >= 2 and len(on_duck["segments"]["persona"]) >= 2


def test_voice_identical_on_spark(duck, spark):
    on_duck, on_spark = both("voice", duck, spark, lambda e, d: voice(e, d, None, GROUPS, seed=0, method="tfidf"))
    same(on_duck, on_spark, "voice")
    assert on_duck["n_texts"] >= 50 and len(on_duck["themes"]) >= 3
    assert all(on_duck["groups"][g] for g in ("stage", "persona", "kind"))


@pytest.fixture
def tied(spark_session, tables, tmp_path_factory, ingested_demo):
    """Another business (60 accounts, seed 3) where friction items' stages are ties between stages. Its
    tables replace the session's views (they are per session), so the module's business is put back after."""
    ws = Workspace(ingested_demo(60, 3).workspace)
    try:
        yield ws, spark_engine(spark_session, export_journey_tables(ws.con, tmp_path_factory.mktemp("parquet_tied")))
    finally:
        ws.close()
        spark_engine(spark_session, tables)


def test_friction_ties_identical_on_spark(tied, monkeypatch):
    """An item's stage is the most common stage of its touches; the touches come in each engine's row order,
    so a tie must not be broken by order (on this business DuckDB said `retention`, Spark `adoption`)."""
    duck, spark = tied
    counts: list[Counter] = []
    real = friction_module._mode

    def spy(values):
        values = list(values)
        counts.append(Counter(v for v in values if v is not None))
        return real(values)

    monkeypatch.setattr(friction_module, "_mode", spy)
    on_duck, on_spark = both("friction_tied", duck, spark, lambda e, d: friction(e, d))
    same(on_duck, on_spark, "friction")
    ties = [c for c in counts if len(c) > 1 and c.most_common(2)[0][1] == c.most_common(2)[1][1]]
    assert ties, "this business should have tied stages or touchpoints: the test would check nothing"
