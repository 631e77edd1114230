"""A --from/--to period in which no event occurs is said (engine.checks.period_findings), checked against a
direct reading of random logs: warned exactly when there are events and none inside the period, on the side
that is wrong, with the days the data covers. The surfaces: tests/test_registry.py."""

from __future__ import annotations

import datetime as dt

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from journeymap.engine.backends import duckdb_engine
from journeymap.engine.checks import period_findings

DAY0 = dt.date(2025, 1, 1)
days = st.integers(0, 60)
events = st.lists(st.tuples(days, st.integers(0, 86399), st.sampled_from(["track", "page", "identify"])), max_size=12)
bounds = st.one_of(st.none(), days)


def _engine(rows):
    con = duckdb.connect()
    con.execute("CREATE TABLE journey_events (ts TIMESTAMP, type VARCHAR)")
    at = [(dt.datetime.combine(DAY0 + dt.timedelta(days=d), dt.time()) + dt.timedelta(seconds=s), t) for d, s, t in rows]
    if at:
        con.executemany("INSERT INTO journey_events VALUES (?, ?)", at)
    return duckdb_engine(con)


@settings(max_examples=150, deadline=None)
@given(events, bounds, bounds)
def test_warned_exactly_when_the_period_holds_no_event(rows, lo, hi):
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    day = lambda d: None if d is None else DAY0 + dt.timedelta(days=d)  # noqa: E731
    found = period_findings(_engine(rows), day(lo) and str(day(lo)), day(hi) and str(day(hi)))
    counted = sorted(d for d, _, t in rows if t != "identify")  # identity calls are not events
    inside = [d for d in counted if (lo is None or d >= lo) and (hi is None or d <= hi)]
    if (lo is None and hi is None) or not counted or inside:
        assert found == []
        return
    (f,) = found
    assert f.key == ("to" if hi is not None and hi < counted[0] else "from")
    assert f.suggestion == f"the data runs from {day(counted[0])} to {day(counted[-1])}"
    period = (f"from {day(lo)} to {day(hi)}" if lo is not None and hi is not None
              else f"from {day(lo)} on" if lo is not None else f"up to {day(hi)}")
    assert f.message == f"no event occurs {period}, so there is nothing to count"


def test_the_last_second_of_the_last_day_is_inside():
    engine = _engine([(3, 86399, "track")])
    assert period_findings(engine, None, str(DAY0 + dt.timedelta(days=3))) == []
    assert period_findings(engine, str(DAY0 + dt.timedelta(days=3)), None) == []
    assert [f.key for f in period_findings(engine, str(DAY0 + dt.timedelta(days=4)), None)] == ["from"]
