"""Time in stage: Kaplan-Meier against hand numbers, the definition, lifelines, and DuckDB vs Spark."""

from __future__ import annotations

import datetime as dt
import math
import random

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from journeymap.engine.stages import visit_durations
from journeymap.engine.stages import visits as stage_visits
from journeymap.engine.survival import kaplan_meier, time_in_stage, time_in_stage_summary

DAY = 86400.0
T0 = dt.datetime(2024, 1, 1)

# The worked example of docs/metrics/time-in-stage.md: 8 visits, in days; 3 still in the stage.
# lifelines 0.30.3 KaplanMeierFitter gives the same curve, median 6.0 and percentile(0.1) 9.0.
DAYS = [1, 1, 2, 3, 4, 6, 7, 9]
ENDED = [True, True, True, False, False, True, False, True]


def test_worked_example_by_hand():
    km = kaplan_meier(DAYS, ENDED)
    assert km.times_.tolist() == [1, 2, 6, 9]
    # 1 - 2/8; * (1 - 1/6); * (1 - 1/3) with 3 at risk after the censored 3 and 4; * (1 - 1/1)
    assert km.survival_ == pytest.approx([0.75, 0.625, 5 / 12, 0.0])
    assert (km.n, km.censored) == (8, 3)
    assert (km.median_, km.quantile(0.9)) == (6.0, 9.0)
    assert km.survival_at([0, 1, 5.9, 6, 100]) == pytest.approx([1, 0.75, 0.625, 5 / 12, 0])
    summary = time_in_stage_summary(np.array(DAYS) * DAY, ENDED)
    assert summary == {
        "p50_seconds": 6 * DAY,
        "p90_seconds": 9 * DAY,
        "n": 8,
        "censored": 3,
        "observed_p50_seconds": 2 * DAY,  # finished visits only: 1, 1, 2, 6, 9 -> biased low
    }


def test_censoring_can_hide_a_quantile():
    still_in = ENDED[:-1] + [False]  # the 9-day visit has not ended yet
    km = kaplan_meier(DAYS, still_in)
    assert km.survival_[-1] == pytest.approx(5 / 12)
    assert km.median_ == 6.0
    assert km.quantile(0.9) is None  # S never falls to 0.1: we cannot say


def test_exact_thresholds_count_as_reached():
    # 9/10 * 7/9 * 5/7 is exactly 1/2 but 0.5000000000000001 in floats; 1 - 0.9 is 0.09999999999999998.
    km = kaplan_meier([1, 2, 2, 3, 3, 4, 5, 6, 7, 8], [True] * 5 + [False] * 5)
    assert km.survival_[-1] > 0.5 and km.median_ == 3.0
    deciles = kaplan_meier(range(1, 11), [True] * 10)
    assert deciles.survival_[8] > 1 - 0.9 and deciles.quantile(0.9) == 9.0


def test_edge_cases():
    empty = time_in_stage_summary([], [])
    assert empty == {"p50_seconds": None, "p90_seconds": None, "n": 0, "censored": 0, "observed_p50_seconds": None}
    assert time_in_stage_summary(np.array([]), np.array([], dtype=bool)) == empty
    assert time_in_stage_summary(pa.array([2.0, 4.0]), pa.array([True, True]))["p50_seconds"] == 2.0  # Arrow input
    assert time_in_stage_summary(iter([3.0]), iter([True]))["observed_p50_seconds"] == 3.0  # any iterable
    assert time_in_stage([], [], []) == {}
    assert time_in_stage_summary([5, 7], [False, False])["p50_seconds"] is None
    assert kaplan_meier([0, 0, 10], [True, True, True]).median_ == 0.0
    for bad in ([-1], [math.nan]):
        with pytest.raises(ValueError, match="non-negative"):
            kaplan_meier(bad, [True])
    with pytest.raises(ValueError, match="equal length"):
        kaplan_meier([1, 2], [True])
    with pytest.raises(ValueError, match="between 0 and 1"):
        kaplan_meier([1], [True]).quantile(1.0)


def test_no_censoring_gives_the_lower_empirical_quantile():
    durations = [5, 1, 4, 2, 3, 6]
    summary = time_in_stage_summary(durations, [True] * 6)
    assert summary["p50_seconds"] == summary["observed_p50_seconds"] == 3.0  # smallest t with F(t) >= 0.5
    assert summary["p90_seconds"] == 6.0


# --- the definition, brute force, and lifelines ------------------------------------------------------

visits = st.lists(
    st.tuples(st.sampled_from([0.0, 1.0, 2.0, 2.5, 3.0, 10.0, 86400.0]), st.booleans()), min_size=1, max_size=40
)


def brute_force_curve(durations: list[float], observed: list[bool]) -> tuple[list[float], list[float]]:
    """Product over event times of (1 - ended at t / lasting at least t), straight from the formula."""
    times, curve, s = [], [], 1.0
    for t in sorted({d for d, e in zip(durations, observed, strict=True) if e}):
        at_risk = sum(d >= t for d in durations)
        ended = sum(d == t and e for d, e in zip(durations, observed, strict=True))
        s *= 1 - ended / at_risk
        times.append(t)
        curve.append(s)
    return times, curve


@settings(max_examples=200, deadline=None)
@given(data=visits, q=st.sampled_from([0.25, 0.5, 0.75, 0.9]))
def test_agrees_with_the_definition(data, q):
    durations, observed = [d for d, _ in data], [e for _, e in data]
    km = kaplan_meier(durations, observed)
    times, curve = brute_force_curve(durations, observed)
    assert km.times_.tolist() == times
    assert km.survival_ == pytest.approx(curve, abs=1e-12)
    reached = [t for t, s in zip(times, curve, strict=True) if s <= 1 - q + 1e-10]
    assert km.quantile(q) == (reached[0] if reached else None)
    assert (km.n, km.censored) == (len(data), observed.count(False))


@settings(max_examples=200, deadline=None)
@given(data=visits, q=st.sampled_from([0.25, 0.5, 0.75, 0.9]))
def test_agrees_with_lifelines(data, q):
    # lifelines needs pandas < 3, which this project's venv does not have; run it with lifelines on
    # the path (e.g. `pip install --target /tmp/ll lifelines "pandas<3"`, PYTHONPATH=/tmp/ll).
    lifelines = pytest.importorskip("lifelines", reason="lifelines 0.30 needs pandas < 3")
    durations, observed = [d for d, _ in data], [e for _, e in data]
    theirs = lifelines.KaplanMeierFitter().fit(durations, observed)
    km = kaplan_meier(durations, observed)
    grid = sorted(set(durations) | {0.0})
    assert km.survival_at(grid) == pytest.approx(theirs.survival_function_at_times(grid).to_numpy(), abs=1e-9)
    # lifelines compares S(t) <= 1 - q with no tolerance and computes S as exp(sum(log)), so
    # an exact tie with the threshold can land on either side there: skip those.
    assume(np.all(np.abs(km.survival_ - (1 - q)) > 1e-9))
    expected = lifelines.utils.qth_survival_time(1 - q, theirs)
    assert km.quantile(q) == (None if math.isinf(expected) else expected)


# --- durations of stage visits (engine.stages), fitted here ---------------------------------------------

SCHEMA = pa.schema([("unit_id", pa.string()), ("stage_hit", pa.string()), ("ts", pa.timestamp("us")), ("seq", pa.int64())])


def events_table(rows: list[tuple[str, str | None, float]]) -> pa.Table:
    units, stages, hours = zip(*rows, strict=True)
    ts = [T0 + dt.timedelta(hours=h) for h in hours]
    return pa.table([list(units), list(stages), ts, list(range(len(rows)))], schema=SCHEMA)


def durations(events: ibis.Table, until: dt.datetime | None = None) -> ibis.Table:
    """Stage visits (the engine's one definition) with their durations, censored at `until`
    (default: the latest event, staged or not)."""
    if until is None:
        until = events.ts.max().to_pyarrow().as_py()
    return visit_durations(stage_visits(events), until)


def visit_rows(con, expr) -> list[tuple]:
    rows = con.to_pyarrow(expr).to_pylist()
    return sorted((r["unit_id"], r["entered_at"], r["stage"], r["seconds"], r["observed"]) for r in rows)


def summaries(con, expr) -> dict:
    d = con.to_pyarrow(expr.select("stage", "seconds", "observed")).to_pydict()
    return time_in_stage(d["stage"], d["seconds"], d["observed"])


def test_stage_visits_censor_the_last_stage_at_the_end_of_observation():
    table = events_table([
        ("u1", "trial", 0), ("u1", "trial", 5), ("u1", "paid", 24),  # repeats stay in one visit
        ("u2", "trial", 0), ("u2", None, 48),  # an event outside any stage still marks time passing
        ("u3", "trial", 0), ("u3", "paid", 12), ("u3", "trial", 30),  # re-entry: a second visit
    ])
    con = ibis.duckdb.connect()
    events = ibis.memtable(table)
    visited = durations(events)
    h = 3600.0
    assert visit_rows(con, visited) == [
        ("u1", T0, "trial", 24 * h, True),
        ("u1", T0 + dt.timedelta(hours=24), "paid", 24 * h, False),  # censored at 48h, the last event
        ("u2", T0, "trial", 48 * h, False),
        ("u3", T0, "trial", 12 * h, True),
        ("u3", T0 + dt.timedelta(hours=12), "paid", 18 * h, True),
        ("u3", T0 + dt.timedelta(hours=30), "trial", 18 * h, False),
    ]
    cut = durations(events, until=T0 + dt.timedelta(hours=20))
    assert [r[2:] for r in visit_rows(con, cut)] == [
        ("trial", 20 * h, False), ("trial", 20 * h, False), ("trial", 12 * h, True), ("paid", 8 * h, False),
    ]
    summary = summaries(con, visited)
    assert summary["trial"] == {"p50_seconds": 24 * h, "p90_seconds": None, "n": 4, "censored": 2,
                                "observed_p50_seconds": 12 * h}
    assert summary["paid"]["n"] == 2


def test_ties_in_ts_follow_seq_then_stage():
    # Same instant: input order (seq) decides; where seq ties too, the stage id does, on every backend.
    table = pa.table({"unit_id": ["u", "u", "u", "v", "v"], "stage_hit": ["b", "a", "c", "y", "x"],
                      "ts": [T0, T0, T0 + dt.timedelta(hours=1), T0, T0], "seq": [2, 1, 3, 7, 7]})
    con = ibis.duckdb.connect()
    rows = con.to_pyarrow(stage_visits(ibis.memtable(table))).to_pylist()
    assert [(r["unit_id"], r["visit_no"], r["stage"], r["next_stage"]) for r in sorted(rows, key=lambda r: (r["unit_id"], r["visit_no"]))] == [
        ("u", 1, "a", "b"), ("u", 2, "b", "c"), ("u", 3, "c", None), ("v", 1, "x", "y"), ("v", 2, "y", None),
    ]


@pytest.mark.spark
def test_stage_visits_spark_matches_duckdb(spark_session, tmp_path):
    rng = random.Random(3)
    rows = [
        (f"u{u}", rng.choice(["trial", "onboarding", "paid", None]), rng.choice([0, 0.5, 7, 30]) * rng.randint(0, 9))
        for u in range(200)
        for _ in range(rng.randint(1, 8))
    ]
    path = str(tmp_path / "stages.parquet")
    pq.write_table(events_table(rows), path)
    duck, spark = ibis.duckdb.connect(), ibis.pyspark.connect(spark_session)
    for until in (None, T0 + dt.timedelta(hours=100)):
        on_duck = durations(duck.read_parquet(path), until)
        on_spark = durations(spark.read_parquet(path), until)
        assert visit_rows(spark, on_spark) == visit_rows(duck, on_duck)
        assert summaries(spark, on_spark) == summaries(duck, on_duck)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8).map(float), st.booleans(), st.integers(1, 5)), min_size=1, max_size=25))
def test_weighted_rows_equal_the_visits_they_stand_for(rows):
    """The map sends (duration, observed, count) groups; the estimate equals the one on every visit."""
    d = [x for x, _, k in rows for _ in range(k)]
    e = [o for _, o, k in rows for _ in range(k)]
    grouped = time_in_stage_summary([x for x, _, _ in rows], [o for _, o, _ in rows], [k for _, _, k in rows])
    assert grouped == time_in_stage_summary(d, e)
    a = kaplan_meier([x for x, _, _ in rows], [o for _, o, _ in rows], [k for _, _, k in rows])
    b = kaplan_meier(d, e)
    assert a.times_.tolist() == b.times_.tolist() and a.survival_.tolist() == b.survival_.tolist()
    assert (a.n, a.censored) == (b.n, b.censored)


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6).map(float), st.booleans(), st.integers(1, 4)), min_size=1, max_size=30),
       st.randoms(use_true_random=False))
def test_durations_passed_in_ascending_order_give_the_same_fit(rows, rnd):
    """The map sorts its durations once and tells each fit they are ascending (engine.stages.time_in_stage_summaries):
    the same curve, counts and summary as a fit that sorts them itself, from rows in any order."""
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    ordered = sorted(rows, key=lambda r: r[0])
    a = kaplan_meier(*zip(*ordered, strict=True), ascending=True)
    b = kaplan_meier(*zip(*shuffled, strict=True))
    assert a.times_.tolist() == b.times_.tolist() and a.survival_.tolist() == b.survival_.tolist()
    assert (a.n, a.censored) == (b.n, b.censored)
    assert (time_in_stage_summary(*zip(*ordered, strict=True), ascending=True)
            == time_in_stage_summary(*zip(*shuffled, strict=True)))
    if len({d for d, _, _ in rows}) > 1:
        descending = sorted(rows, key=lambda r: -r[0])
        with pytest.raises(ValueError, match="not in ascending order"):
            kaplan_meier(*zip(*descending, strict=True), ascending=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["trial", "paid", "onboarding"]), st.sampled_from(["smb", "ent", None]),
                          st.integers(0, 5).map(float), st.booleans(), st.integers(1, 3)), min_size=1, max_size=40),
       st.booleans())
def test_the_maps_summaries_equal_a_fit_per_group(rows, one_persona):
    """Where the durations do not fit packed keys, engine.stages.time_in_stage_summaries reads them grouped
    (stage_duration_counts), sorts them once for every (stage) and (stage, persona) fit, and with a single persona
    reuses the stages' summaries: each equals time_in_stage_summary on that group's rows alone, in their order."""
    from journeymap.engine import stages

    if one_persona:
        rows = [(s, None, d, e, n) for s, _, d, e, n in rows]
    table = pa.table({k: list(v) for k, v in zip(["stage", "persona", "seconds", "observed", "n"], zip(*rows, strict=True),
                                                 strict=True)},
                     schema=pa.schema([("stage", pa.string()), ("persona", pa.string()), ("seconds", pa.float64()),
                                       ("observed", pa.bool_()), ("n", pa.int64())]))
    got = stages._summaries_of_counts(table, "all", True)  # what follows the engine's grouped fetch
    groups: dict = {}
    for s, p, d, e, n in rows:
        for key in ((s, "all"), (s, p or "unassigned")):
            groups.setdefault(key, []).append((d, e, n))
    assert got == {key: time_in_stage_summary(*zip(*g, strict=True)) for key, g in groups.items()}


SUMMARY_DEFINITION = {
    "stages": [{"id": "trial", "name": "Trial", "entry": "trial_started"},
               {"id": "onboarding", "name": "Onboarding", "entry": "signed_up"},
               {"id": "paid", "name": "Paid", "entry": "invoice_paid"},
               {"id": "churned", "name": "Churned", "entry": "cancelled", "terminal": True, "kind": "churn"}],
    "personas": [{"id": "smb", "name": "SMB", "traits": {"employees": {"lt": 50}}},
                 {"id": "ent", "name": "Enterprise", "traits": {"employees": {"gte": 50}}}],
}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["trial", "onboarding", "paid", "churned"]),
                          st.sampled_from(["smb", "ent", "unassigned"]),
                          st.integers(0, 4000), st.one_of(st.none(), st.sampled_from([0, 1, 60, 3600]),
                                                          st.integers(0, 10 ** 7)), st.integers(0, 999_999)),
                min_size=1, max_size=40),
       st.booleans(), st.sampled_from([62, 40]))
def test_the_maps_summaries_from_packed_keys_equal_a_fit_per_group(rows, one_persona, key_bits):
    """engine.stages.time_in_stage_summaries on real visits through DuckDB: from one int64 per visit (stage,
    microseconds, observed, persona) sorted by numpy, or, where a duration overflows the key's bits (forced
    here by a 40-bit budget: 2^36 microseconds, 19 hours, with these 4 stages and 2 personas), from the
    grouped fetch. Either way each summary equals time_in_stage_summary on its group's visits alone, and the
    keys are used exactly when every duration fits them."""
    from journeymap.engine import stages
    from journeymap.engine.backends import duckdb_engine
    from journeymap.journey.definition import JourneyDefinition

    import duckdb

    definition = JourneyDefinition.model_validate(SUMMARY_DEFINITION)
    until = T0 + dt.timedelta(minutes=3000)  # some visits start after it (unseen), some end after it (censored)
    table = pa.table({
        "unit_id": [f"u{i}" for i in range(len(rows))],
        "stage": [r[0] for r in rows],
        "persona": ["smb" if one_persona else r[1] for r in rows],
        "entered_at": [T0 + dt.timedelta(minutes=r[2], microseconds=r[4]) for r in rows],
        "left_at": [None if r[3] is None else T0 + dt.timedelta(minutes=r[2], microseconds=r[4], seconds=r[3])
                    for r in rows],
    }, schema=pa.schema([("unit_id", pa.string()), ("stage", pa.string()), ("persona", pa.string()),
                         ("entered_at", pa.timestamp("us")), ("left_at", pa.timestamp("us"))]))
    con = duckdb.connect()
    con.register("v", table)
    engine = duckdb_engine(con)
    v = engine.backend.table("v")
    visits = stages.stage_durations(engine, v, definition, until).to_pylist()
    groups: dict = {}
    for r in visits:
        for key in ((r["stage"], "all"), (r["stage"], r["persona"])):
            groups.setdefault(key, []).append((r["seconds"], r["observed"]))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stages, "KEY_BITS", key_bits)
        packed = stages.stage_duration_keys(engine, v, definition, until, ["smb", "ent"])
        got = stages.time_in_stage_summaries(engine, v, definition, until, "all")
    # 4 stages take 2 bits, 2 personas and the unassigned 2: the rest are the microseconds'
    fits = all(r["seconds"] * 1e6 < 2 ** (key_bits - 4) for r in visits)
    assert (packed is not None) == fits
    if packed is not None:
        assert len(packed.keys) == len(visits)
    assert got == {key: time_in_stage_summary(*zip(*g, strict=True)) for key, g in groups.items()}
