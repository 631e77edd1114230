"""Lifecycle and stickiness: a hand-worked example (docs/metrics/lifecycle.md) and brute-force references.

The references share no code with the engine: plain Python over dates, interval by interval.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cohort_data import ACCOUNT, at, write_workspace
from journeymap.cli.main import app as cli_app
from journeymap.engine.lifecycle import lifecycle, stickiness


# The retention worked example, plus an identify call that dates u4's profile to December 2023.
EXAMPLE = [
    ("u1", at(1), "signup"), ("u1", at(3), "use"), ("u1", at(9), "use"), ("u1", at(24), "use"),
    ("u2", at(2), "signup"), ("u2", at(10), "use"), ("u2", at(17), "signup"), ("u2", at(18), "use"),
    ("u3", at(5), "signup"),
    ("u4", dt.datetime(2023, 12, 20), "identify", "identify"),
    ("u4", at(8), "signup"), ("u4", at(16), "use"), ("u4", at(25), "use"),
    ("u5", at(10), "identify", "identify", {"createdAt": "2024-01-02T10:00:00-05:00"}),
    ("u5", at(10), "signup"), ("u5", at(11), "use"),
]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    ws = write_workspace(tmp_path_factory.mktemp("lifecycle"), EXAMPLE)
    yield ws
    ws.close()


def _rows(result):
    return [(r["start"], r["new"], r["returning"], r["resurrecting"], r["dormant"], r["quick_ratio"])
            for r in result["intervals"]]


def test_worked_example(example):
    assert _rows(lifecycle(example.engine, interval="week")) == [
        ("2024-01-01", 3, 0, 0, 0, None),
        ("2024-01-08", 2, 2, 0, -1, 2.0),
        ("2024-01-15", 0, 2, 0, -2, 0.0),
        ("2024-01-22", 0, 1, 1, -1, 1.0),
    ]
    # History before the range still decides: nobody is new in it because they were seen before.
    assert _rows(lifecycle(example.engine, interval="week", date_from="2024-01-10"))[0] == ("2024-01-08", 2, 2, 0, -1, 2.0)
    # By creation date u4 (first seen in December) and u5 (createdAt trait: Jan 2) are not new in their
    # first active week: they resurrect.
    assert _rows(lifecycle(example.engine, interval="week", new_by="created_at"))[1] == ("2024-01-08", 0, 2, 2, -1, 2.0)
    # Only "use" makes a unit active: u3 never is, and u4 is new in its first week with a use.
    assert _rows(lifecycle(example.engine, interval="week", event="use")) == [
        ("2024-01-01", 1, 0, 0, 0, None),
        ("2024-01-08", 2, 1, 0, 0, None),
        ("2024-01-15", 1, 1, 0, -2, 0.5),
        ("2024-01-22", 0, 1, 1, -1, 1.0),
    ]


def test_stickiness_worked_example(example):
    s = stickiness(example.engine, interval="week")
    assert [(r["start"], r["units"], r["distribution"][:3]) for r in s["intervals"]] == [
        ("2024-01-01", 3, [2, 1, 0]), ("2024-01-08", 4, [3, 1, 0]), ("2024-01-15", 2, [1, 1, 0]),
        ("2024-01-22", 2, [2, 0, 0])]
    assert s["dau_mau"] == [{"month": "2024-01-01", "days": 25, "avg_dau": 0.56, "mau": 5, "dau_mau": 0.112}]


@pytest.mark.parametrize("fn, kwargs", [
    (lifecycle, {"interval": "week"}), (lifecycle, {"interval": "month", "event": "use", "new_by": "created_at"}),
    (lifecycle, {"interval": "day", "level": "account", "date_from": "2024-01-05", "date_to": "2024-01-20"}),
    (stickiness, {"interval": "week"}), (stickiness, {"interval": "month", "event": "use", "level": "account"}),
])
def test_one_statement(example, monkeypatch, fn, kwargs):
    """Each answer is one query (one round trip, no temp table): the range's ends come back with the counts."""
    from journeymap.engine.backends import Engine

    calls = []
    execute = Engine.execute
    monkeypatch.setattr(Engine, "execute", lambda self, expr: calls.append(expr) or execute(self, expr))
    monkeypatch.setattr(Engine, "materialize", lambda self, expr: pytest.fail("materialized"))
    assert fn(example.engine, **kwargs)["intervals"]
    assert len(calls) == 1


@pytest.mark.parametrize("fn, kwargs, message", [
    (lifecycle, {"interval": "fortnight"}, "--interval"), (lifecycle, {"new_by": "signup"}, "--new-by"),
    (lifecycle, {"level": "team"}, "--by"), (lifecycle, {"date_from": "2024-13-01"}, "--from"),
    (stickiness, {"interval": "day"}, "--interval"), (stickiness, {"level": "org"}, "--by"),
])
def test_invalid_options(example, fn, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fn(example.engine, **kwargs)


def test_cli(example, tmp_path):
    app = cli_app
    run = CliRunner().invoke
    res = run(app, ["lifecycle", "-w", str(example.path), "--json"])
    assert res.exit_code == 0, res.output
    assert [r["dormant"] for r in json.loads(res.stdout)["intervals"]] == [0, -1, -2, -1]
    res = run(app, ["stickiness", "-w", str(example.path), "--by", "account"])
    assert res.exit_code == 0 and "DAU/MAU" in res.stdout
    res = run(app, ["lifecycle", "-w", str(example.path), "--new-by", "birthday"])
    assert res.exit_code == 2 and "--new-by" in res.stderr
    res = run(app, ["stickiness", "-w", str(tmp_path / "nowhere")])
    assert res.exit_code == 1 and "no such workspace folder" in " ".join(res.stderr.split())


# -- brute-force references ------------------------------------------------------------------------------------------

def start_of(d: dt.date, interval: str) -> dt.date:
    if interval == "day":
        return d
    if interval == "week":
        return d - dt.timedelta(days=d.weekday())
    if interval == "month":
        return d.replace(day=1)
    return d.replace(month=(d.month - 1) // 3 * 3 + 1, day=1)


def next_start(d: dt.date, interval: str) -> dt.date:
    return start_of(d + dt.timedelta(days={"day": 1, "week": 7, "month": 31, "quarter": 92}[interval]), interval)


def prev_start(d: dt.date, interval: str) -> dt.date:
    return start_of(d - dt.timedelta(days=1), interval)


def unit_of(who: str, level: str) -> str | None:
    return who if level == "person" else (ACCOUNT[who] or None)


def created_trait(rows, who: str) -> dt.datetime | None:
    """The createdAt of the person's latest identify call that has one (file order breaks ties)."""
    calls = [(r[1], i, r[4]["createdAt"]) for i, r in enumerate(rows) if r[0] == who and len(r) > 4 and "createdAt" in r[4]]
    if not calls:
        return None
    text = max(calls)[2]
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t


def ref_lifecycle(rows, interval, level, event, new_by, date_from, date_to=None):
    traits = {r[0]: created_trait(rows, r[0]) for r in rows} if level == "person" else {}
    calls = [(unit_of(r[0], level), r[1], r[2]) for r in rows if unit_of(r[0], level)]  # any kind: first_seen
    evs = [(u, ts, ev) for u, ts, ev in calls if ev != "identify"]  # identify calls are never activity
    active: dict[str, set] = {}
    for u, ts, ev in evs:
        if event is None or ev == event:
            active.setdefault(u, set()).add(start_of(ts.date(), interval))
    if not active:
        return []
    created = {u: start_of((traits.get(u) or min(ts for v, ts, _ in calls if v == u)).date(), interval) for u in active}
    new_at = {u: (min(s) if new_by == "first_event" else created[u]) for u, s in active.items()}
    i = start_of(dt.date.fromisoformat(date_from), interval) if date_from else min(min(s) for s in active.values())
    end = start_of(dt.date.fromisoformat(date_to) if date_to else max(ts for _, ts, _ in evs).date(), interval)
    out = []
    while i <= end:
        c = {"new": 0, "returning": 0, "resurrecting": 0, "dormant": 0}
        p = prev_start(i, interval)
        for u, s in active.items():
            if i in s:
                c["new" if new_at[u] == i else "returning" if p in s else "resurrecting"] += 1
            elif p in s:
                c["dormant"] += 1
        qr = round((c["new"] + c["resurrecting"]) / c["dormant"], 6) if c["dormant"] else None
        out.append((i.isoformat(), c["new"], c["returning"], c["resurrecting"], -c["dormant"], qr))
        i = next_start(i, interval)
    return out


def ref_stickiness(rows, interval, level, event):
    rows = [r[:3] for r in rows if r[2] != "identify"]
    evs = [(unit_of(w, level), ts, ev) for w, ts, ev in rows if unit_of(w, level)]
    if not evs:
        return [], []
    days: dict[str, set] = {}
    for u, ts, ev in evs:
        if event is None or ev == event:
            days.setdefault(u, set()).add(ts.date())
    first, last = min(ts for _, ts, _ in evs).date(), max(ts for _, ts, _ in evs).date()
    out = []
    i = start_of(first, interval)
    while i <= last:
        j = next_start(i, interval)
        width = (j - i).days
        dist = [0] * width
        for s in days.values():
            k = sum(1 for d in s if i <= d < j)
            if k:
                dist[k - 1] += 1
        out.append((i.isoformat(), sum(dist), dist))
        i = j
    monthly = []
    m = first.replace(day=1)
    while m <= last:
        nm = next_start(m, "month")
        span = [m + dt.timedelta(days=k) for k in range((nm - m).days) if first <= m + dt.timedelta(days=k) <= last]
        dau = sum(sum(1 for s in days.values() if d in s) for d in span) / len(span)
        mau = sum(1 for s in days.values() if any(m <= d < nm for d in s))
        monthly.append((m.isoformat(), len(span), round(dau, 6), mau, round(dau / mau, 6) if mau else None))
        m = nm
    return out, monthly


T0 = dt.datetime(2024, 1, 29)
event_rows = st.lists(
    st.tuples(st.sampled_from(["u1", "u2", "u3", "u4", "u5"]), st.integers(0, 100), st.sampled_from([0, 9, 23]),
              st.sampled_from(["a", "b"])),
    min_size=1, max_size=30,
).map(lambda xs: [(w, T0 + dt.timedelta(days=d, hours=h), e) for w, d, h, e in xs])
# identify calls dating a person's profile: createdAt as UTC text, with an offset, or a bare date
identify_rows = st.lists(
    st.tuples(st.sampled_from(["u1", "u2", "u3"]), st.integers(0, 100), st.integers(-60, 100),
              st.sampled_from(["Z", "+02:00", ""])),
    max_size=3,
).map(lambda xs: [(w, T0 + dt.timedelta(days=d, hours=5), "identify", "identify",
                   {"createdAt": (T0 + dt.timedelta(days=c, hours=1)).isoformat() + z}) for w, d, c, z in xs])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.tuples(event_rows, identify_rows).map(lambda t: t[0] + t[1]), interval=st.sampled_from(["day", "week", "month", "quarter"]),
       level=st.sampled_from(["person", "account"]), event=st.sampled_from([None, "a"]),
       date_from=st.sampled_from([None, "2024-03-01"]),
       date_to=st.sampled_from([None, "2024-04-10"]), sticky=st.sampled_from(["week", "month", "quarter"]))
def test_matches_reference(rows, interval, level, event, date_from, date_to, sticky):
    with tempfile.TemporaryDirectory() as tmp:
        ws = write_workspace(Path(tmp), rows)
        try:
            for new_by in ("first_event", "created_at"):
                got = lifecycle(ws.engine, interval=interval, level=level, event=event, new_by=new_by, date_from=date_from,
                                date_to=date_to)
                assert _rows(got) == ref_lifecycle(rows, interval, level, event, new_by, date_from, date_to), new_by
            s = stickiness(ws.engine, interval=sticky, level=level, event=event)
            want, monthly = ref_stickiness(rows, sticky, level, event)
            assert [(r["start"], r["units"], r["distribution"]) for r in s["intervals"]] == want
            assert [(m["month"], m["days"], m["avg_dau"], m["mau"], m["dau_mau"]) for m in s["dau_mau"]] == monthly
        finally:
            ws.close()


# -- the same answers on Spark ---------------------------------------------------------------------------------------

@pytest.mark.spark
def test_identical_on_spark(example, spark_session, tmp_path):
    from journeymap.engine.backends import spark_engine
    from journeymap.engine.spark_backend import export_journey_tables

    spark = spark_engine(spark_session, export_journey_tables(example.con, tmp_path))
    kwargs = dict(interval="week", new_by="created_at", level="account")
    assert lifecycle(spark, **kwargs) == lifecycle(example.engine, **kwargs)
    assert stickiness(spark, interval="month") == stickiness(example.engine, interval="month")
