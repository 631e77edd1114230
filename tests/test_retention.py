"""Retention: a hand-worked example (docs/metrics/retention.md) and a brute-force reference on random logs.

The reference below shares no code with the engine: it walks each unit's events in (ts, seq) order in
plain Python, with intervals as dates (the Monday of the week, the first of the month or quarter).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cohort_data import ACCOUNT, at, write_workspace
from journeymap.cli.main import app as cli_app
from journeymap.engine.retention import parse_brackets, rates, retention
from journeymap.engine.spark_backend import export_journey_tables

# -- the worked example (docs/metrics/retention.md) ------------------------------------------------------------------


EXAMPLE = [
    ("u1", at(1), "signup"), ("u1", at(3), "use"), ("u1", at(9), "use"), ("u1", at(24), "use"),
    ("u2", at(2), "signup"), ("u2", at(10), "use"), ("u2", at(17), "signup"), ("u2", at(18), "use"),
    ("u3", at(5), "signup"),
    ("u4", at(8), "signup"), ("u4", at(16), "use"), ("u4", at(25), "use"),
    ("u5", at(10), "signup"), ("u5", at(11), "use"),
]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    ws = write_workspace(tmp_path_factory.mktemp("retention"), EXAMPLE)
    yield ws
    ws.close()


def _table(result):
    return [(c["start"], c["size"], c["values"]) for c in result["cohorts"]]


def test_worked_example_weekly(example):
    e = example.engine
    assert _table(retention(e, "signup", "use", interval="week")) == [
        ("2024-01-01", 3, [1, 2, 1, 1]), ("2024-01-08", 2, [1, 1, 1])]
    assert _table(retention(e, "signup", "use", interval="week", period="on_or_after")) == [
        ("2024-01-01", 3, [2, 2, 2, 1]), ("2024-01-08", 2, [2, 1, 1])]
    assert _table(retention(e, "signup", "use", interval="week", mode="recurring")) == [
        ("2024-01-01", 3, [1, 2, 1, 1]), ("2024-01-08", 2, [1, 1, 1]), ("2024-01-15", 1, [1, 0])]
    r = retention(e, "signup", "use", interval="week")
    assert r["cohorts"][0]["rates"] == [0.333333, 0.666667, 0.333333, 0.333333]


def test_worked_example_brackets_rolling_and_range(example):
    e = example.engine
    assert _table(retention(e, "signup", "use", interval="week", brackets="1-3,4-7,8-14")) == [
        ("2024-01-01", 3, [1, 0, 2]), ("2024-01-08", 2, [1, 0, 1])]
    # Rolling weeks from each unit's own signup: u1 returns 2, 8, 23 days after it -> periods 0, 1, 3;
    # u4 8 and 17 days after -> 1, 2.
    assert _table(retention(e, "signup", "use", interval="week", rolling=True)) == [
        ("2024-01-01", 3, [1, 2, 1, 1]), ("2024-01-08", 2, [1, 1, 1])]
    assert _table(retention(e, "signup", "use", interval="week", date_from="2024-01-10")) == [
        ("2024-01-08", 2, [1, 1, 1])]
    # Start and return the same event: the anchor is not its own return; u2's second signup is.
    assert _table(retention(e, "signup", "signup", interval="week")) == [
        ("2024-01-01", 3, [0, 0, 1, 0]), ("2024-01-08", 2, [0, 0, 0])]


def test_account_level(example):
    # acme = u1 + u2 (first signup day 1, uses in weeks 0-3), beta = u3 + u4 (signup day 5, uses in
    # weeks 2 and 3); u5 has no account.
    assert _table(retention(example.engine, "signup", "use", interval="week", level="account")) == [
        ("2024-01-01", 2, [1, 1, 2, 2])]


@pytest.mark.parametrize("kwargs, message", [
    ({"interval": "year"}, "--interval"), ({"mode": "sometimes"}, "--mode"), ({"period": "before"}, "--period"),
    ({"brackets": "3-1"}, "--brackets"), ({"brackets": "1-3,2-5"}, "--brackets"), ({"brackets": "x"}, "--brackets"),
    ({"level": "team"}, "--by"), ({"date_from": "March"}, "--from"),
    ({"date_from": "2024-02-01", "date_to": "2024-01-01"}, "--from"),
])
def test_invalid_options(example, kwargs, message):
    with pytest.raises(ValueError, match=message):
        retention(example.engine, "signup", "use", **kwargs)


def test_cli(example):
    app = cli_app
    run = CliRunner().invoke
    res = run(app, ["retention", "-w", str(example.path), "--start", "signup", "--return", "use", "--json"])
    assert res.exit_code == 0, res.output
    import json
    assert [c["values"] for c in json.loads(res.stdout)["cohorts"]] == [[1, 2, 1, 1], [1, 1, 1]]
    res = run(app, ["retention", "-w", str(example.path), "--start", "signup", "--return", "use"])
    assert res.exit_code == 0 and "2024-01-01" in res.stdout
    res = run(app, ["retention", "-w", str(example.path), "--start", "signup", "--return", "use", "--mode", "x"])
    assert res.exit_code == 2 and "--mode" in res.stderr


# -- brute-force reference -------------------------------------------------------------------------------------------

def start_of(d: dt.date, interval: str) -> dt.date:
    if interval == "day":
        return d
    if interval == "week":
        return d - dt.timedelta(days=d.weekday())
    if interval == "month":
        return d.replace(day=1)
    return d.replace(month=(d.month - 1) // 3 * 3 + 1, day=1)


def steps(a: dt.date, b: dt.date, interval: str) -> int:
    """Whole intervals from the interval starting at a to the one starting at b."""
    if interval in ("day", "week"):
        return (b - a).days // (1 if interval == "day" else 7)
    months = (b.year - a.year) * 12 + b.month - a.month
    return months if interval == "month" else months // 3


def unit_of(who: str, level: str) -> str | None:
    return who if level == "person" else (ACCOUNT[who] or None)


def reference(rows, start, ret, interval, mode, period, rolling, brackets, level, date_from=None, date_to=None):
    evs = [(unit_of(w, level), ts, seq, ev) for seq, (w, ts, ev) in enumerate(rows) if unit_of(w, level)]
    if not evs:
        return []
    end = max(ts for _, ts, _, _ in evs)
    by_unit: dict[str, list] = {}
    for u, ts, seq, ev in sorted(evs, key=lambda e: (e[1], e[2])):
        by_unit.setdefault(u, []).append((ts, seq, ev))
    members: dict[dt.date, list] = {}  # cohort start -> [(anchor ts, anchor seq, unit)]
    for u, seq_evs in by_unit.items():
        seen = set()
        for ts, seq, ev in seq_evs:
            c = start_of(ts.date(), interval)
            if ev == start and (c not in seen) and (mode == "recurring" or not seen):
                seen.add(c)
                members.setdefault(c, []).append((ts, seq, u))
    lo = start_of(dt.date.fromisoformat(date_from), interval) if date_from else None
    hi = start_of(dt.date.fromisoformat(date_to), interval) if date_to else None
    out = []
    days = {"day": 1, "week": 7, "month": 30, "quarter": 90}[interval]
    for c in sorted(members):
        if (lo and c < lo) or (hi and c > hi):
            continue
        if brackets:
            n = len(brackets) - 1
        elif rolling:
            n = int((end - min(m[0] for m in members[c])).total_seconds() // (days * 86400))
        else:
            n = steps(c, start_of(end.date(), interval), interval)
        values = [0] * (n + 1)
        for a_ts, a_seq, u in members[c]:
            ps = set()
            for ts, seq, ev in by_unit[u]:
                if ev == ret and (ts, seq) > (a_ts, a_seq):
                    secs = (ts - a_ts).total_seconds()
                    if brackets:
                        ps.add(int(secs // 86400))
                    elif rolling:
                        ps.add(int(secs // (days * 86400)))
                    else:
                        ps.add(steps(c, start_of(ts.date(), interval), interval))
            for k in range(n + 1):
                if brackets:
                    b_lo, b_hi = brackets[k]
                    hit = any(b_lo <= p <= b_hi for p in ps) if period == "on" else any(p >= b_lo for p in ps)
                else:
                    hit = (k in ps) if period == "on" else any(p >= k for p in ps)
                values[k] += hit
        out.append((c.isoformat(), len(members[c]), values))
    return out


T0 = dt.datetime(2024, 1, 29)
event_rows = st.lists(
    st.tuples(st.sampled_from(["u1", "u2", "u3", "u4", "u5"]), st.integers(0, 75), st.sampled_from([0, 9, 23]),
              st.sampled_from(["a", "b", "c"])),
    min_size=1, max_size=30,
).map(lambda xs: [(w, T0 + dt.timedelta(days=d, hours=h), e) for w, d, h, e in xs])


@settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=event_rows, interval=st.sampled_from(["day", "week", "month", "quarter"]),
       timing=st.sampled_from(["calendar", "rolling", "brackets"]), level=st.sampled_from(["person", "account"]),
       ret=st.sampled_from(["a", "b"]), date_from=st.sampled_from([None, "2024-02-20"]),
       date_to=st.sampled_from([None, "2024-03-20"]),
       brackets=st.sampled_from(["0-0,1-3,4-7", "1-1,2-30", "0-6,7-13,14-60"]))
def test_matches_reference(rows, interval, timing, level, ret, date_from, date_to, brackets):
    with tempfile.TemporaryDirectory() as tmp:
        ws = write_workspace(Path(tmp), rows)
        try:
            for mode in ("first_time", "recurring"):
                for period in ("on", "on_or_after"):
                    b = brackets if timing == "brackets" else None
                    got = retention(ws.engine, "a", ret, interval=interval, mode=mode, period=period,
                                    rolling=timing == "rolling", brackets=b, level=level, date_from=date_from,
                                    date_to=date_to)
                    want = reference(rows, "a", ret, interval, mode, period, timing == "rolling", parse_brackets(b),
                                     level, date_from=date_from, date_to=date_to)
                    assert _table(got) == want, (mode, period)
                    assert all(c["rates"] == [round(v / c["size"], 6) for v in c["values"]] for c in got["cohorts"])
        finally:
            ws.close()


# sizes whose rates can end in an exact decimal half at the 7th place (1 / 640 = 0.0015625), where the product
# v / size * 1e6 rounds to the half and the double v / size lies just above or below it
HALVES = st.builds(lambda a, b: 2**a * 5**b, st.integers(0, 10), st.integers(0, 10))


@settings(max_examples=300, deadline=None)
@given(size=st.one_of(st.integers(1, 10**8), HALVES), picks=st.lists(st.floats(0, 1), min_size=1, max_size=40))
def test_rates_are_pythons_rounding(size, picks):
    values = [int(f * size) for f in picks]
    assert rates(np.array(values, dtype=np.int64), size) == [round(v / size, 6) for v in values]


@pytest.mark.parametrize("size", [128, 640, 78125, 2**7 * 5**3, 3 * 2**20])
def test_rates_at_exact_halves(size):
    values = np.arange(0, size + 1, max(1, size // 100_000), dtype=np.int64)
    assert rates(values, size) == [round(int(v) / size, 6) for v in values]


# -- the same answers on Spark (lifecycle and stickiness: tests/test_lifecycle.py) ---------------------------------

@pytest.mark.spark
def test_identical_on_spark(example, spark_session, tmp_path):
    from journeymap.engine.backends import spark_engine

    spark = spark_engine(spark_session, export_journey_tables(example.con, tmp_path))
    for kwargs in (dict(interval="week", mode="recurring"),
                   dict(interval="day", brackets="1-3,4-7", period="on_or_after", level="account")):
        assert retention(spark, "signup", "use", **kwargs) == retention(example.engine, "signup", "use", **kwargs), kwargs
