"""The weekly series an improvement's effect is computed from (insights/improvements/series.py), against a
direct computation in Python from the same visits and events."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest

from journeymap.engine.annotate import journey_tables
from journeymap.insights.improvements import series as S
from journeymap.workspace import Workspace


@pytest.fixture(scope="module")
def tables(ingested_demo):
    ws = Workspace(ingested_demo(300, 7).workspace)
    try:
        engine = ws.engine
        with engine.scope():
            a, v, _ = journey_tables(engine, ws.definition, "person")
            events = engine.execute(a.group_by("unit_id").aggregate(start=a.ts.min())).to_pylist()
            visits = engine.execute(v.select("unit_id", "stage", "visit_no", "entered_at")).to_pylist()
            hi = engine.execute(a.aggregate(hi=a.ts.max())).to_pylist()[0]["hi"]
            got = {m: S.weekly(engine, ws.definition, "person", m, st)
                   for m, st in (("reached", "acquisition"), ("conversion", "evaluation"))}
            yield ws.definition, events, visits, hi, got
    finally:
        ws.close()


def _monday(ts: dt.datetime) -> dt.date:
    return ts.date() - dt.timedelta(days=ts.weekday())


def _complete(hi: dt.datetime) -> dt.date:
    return (hi - S.HORIZON - dt.timedelta(days=7)).date()


def _compare(got: S.Series, expected: dict[dt.date, tuple[int, int]]):
    kept = {w: (n, k) for w, (n, k) in expected.items() if n >= S.MIN_WEEK_N}
    assert got.weeks == sorted(kept) and got.dropped_weeks == len(expected) - len(kept)
    for w, value, n in zip(got.weeks, got.values, got.n, strict=True):
        assert n == kept[w][0] and value == pytest.approx(100.0 * kept[w][1] / kept[w][0])


def test_reached_by_start_week_matches_python(tables):
    _, events, visits, hi, got = tables
    first = {}
    for r in visits:
        if r["stage"] == "acquisition":
            first[r["unit_id"]] = min(first.get(r["unit_id"], r["entered_at"]), r["entered_at"])
    counts: dict[dt.date, list[int]] = defaultdict(lambda: [0, 0])
    for e in events:
        week = _monday(e["start"])
        if week >= _complete(hi):
            continue
        counts[week][0] += 1
        at = first.get(e["unit_id"])
        counts[week][1] += at is not None and at <= e["start"] + S.HORIZON
    _compare(got["reached"], {w: tuple(c) for w, c in counts.items()})
    assert len(got["reached"].weeks) >= 40


def test_conversion_by_entry_week_matches_the_funnel_rule(tables):
    definition, _, visits, hi, got = tables
    ids = [s.id for s in definition.stages]
    later = {s.id for s in definition.stages if (not s.terminal or s.kind == "won") and ids.index(s.id) > ids.index(
        "evaluation")}
    by_unit = defaultdict(list)
    for r in visits:
        by_unit[r["unit_id"]].append(r)
    counts: dict[dt.date, list[int]] = defaultdict(lambda: [0, 0])
    for rows in by_unit.values():
        mine = [r for r in rows if r["stage"] == "evaluation"]
        if not mine:
            continue
        first = min(mine, key=lambda r: r["visit_no"])
        week = _monday(first["entered_at"])
        if week >= _complete(hi):
            continue
        counts[week][0] += 1
        counts[week][1] += any(r["stage"] in later and r["visit_no"] > first["visit_no"]
                               and r["entered_at"] <= first["entered_at"] + S.HORIZON for r in rows)
    _compare(got["conversion"], {w: tuple(c) for w, c in counts.items()})


def test_a_metric_without_a_weekly_series_says_so(ingested_demo):
    with Workspace(ingested_demo(300, 7).workspace) as ws:
        engine = ws.engine
        with engine.scope(), pytest.raises(S.Unsupported, match="churn_rate has no weekly series yet"):
            S.weekly(engine, ws.definition, "person", "churn_rate", None)
