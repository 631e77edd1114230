"""Transitions (directly-follows graph): known answers on real logs, a brute-force oracle, DuckDB vs Spark."""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter, defaultdict
from pathlib import Path

import ibis
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeymap.engine.transitions import transitions, transitions_result

SHARED = Path(os.environ.get("JOURNEYMAP_SHARED", Path(__file__).resolve().parents[2] / "shared"))  # as conftest.py
LOGS = SHARED / "data" / "process_logs"
CASE, ACTIVITY, TIMESTAMP = "case:concept:name", "concept:name", "time:timestamp"
SCHEMA = pa.schema([("unit_id", pa.string()), ("label", pa.string()), ("ts", pa.timestamp("us")), ("seq", pa.int64())])
T0 = dt.datetime(2024, 1, 1)


def read_log(name: str) -> pa.Table:
    """A process log as (case, activity, UTC timestamp, seq = file row order)."""
    path = LOGS / name
    if not path.exists():
        pytest.skip(f"reference data {path} not found (set JOURNEYMAP_SHARED to the shared/ folder)")
    table = pacsv.read_csv(path).select([CASE, ACTIVITY, TIMESTAMP])
    ts = table[TIMESTAMP].cast(pa.timestamp("us", tz="UTC"))  # Spark reads no nanoseconds
    return table.set_column(2, TIMESTAMP, ts).append_column("seq", pa.array(range(table.num_rows), pa.int64()))


def parse_dfg(path: Path) -> tuple[dict[str, int], dict[str, int], dict[tuple[str, str], int]]:
    """pm4py's .dfg text: activities, then `idx x count` starts and ends, then `a>b x count` edges."""
    lines = path.read_text().splitlines()
    n = int(lines[0])
    names, i = lines[1 : 1 + n], 1 + n

    def block(i: int) -> tuple[dict[str, int], int]:
        k = int(lines[i])
        rows = [line.split("x") for line in lines[i + 1 : i + 1 + k]]
        return {names[int(a)]: int(c) for a, c in rows}, i + 1 + k

    starts, i = block(i)
    ends, i = block(i)
    edges = {}
    for line in lines[i:]:
        pair, count = line.split("x")
        a, b = pair.split(">")
        edges[(names[int(a)], names[int(b)])] = int(count)
    return starts, ends, edges


def log_result(con, table: pa.Table, **kw) -> dict:
    t = con.create_table("log", ibis.memtable(table))  # overwrite=True trips an Ibis 12 / sqlglot bug
    return transitions_result(t, unit=CASE, label=ACTIVITY, ts=TIMESTAMP, con=con, **kw)


def test_running_example_matches_reference_dfg():
    result = log_result(ibis.duckdb.connect(), read_log("running-example.csv"))
    starts, ends, edges = parse_dfg(LOGS / "running-example.dfg")
    assert {(e["from"], e["to"]): e["count"] for e in result["edges"]} == edges
    assert len(result["edges"]) == 16
    assert result["starts"] == starts == {"register request": 6}
    assert result["ends"] == ends == {"pay compensation": 3, "reject request": 3}
    assert result["variants"] == 6
    assert result["edges"][0] == {"from": "check ticket", "to": "decide", "count": 6, "mean_seconds": 181960.0}


def test_receipt_known_numbers():
    table = read_log("receipt.csv")
    con = ibis.duckdb.connect()
    result = log_result(con, table)
    assert table.num_rows == 8577 and len(set(table[CASE].to_pylist())) == 1434
    assert result["variants"] == 116
    assert len(result["edges"]) == 99
    assert sum(e["count"] for e in result["edges"]) == 8577 - 1434  # one fewer pair than events per case
    assert sum(result["starts"].values()) == sum(result["ends"].values()) == 1434
    keys = [(-e["count"], e["from"], e["to"]) for e in result["edges"]]
    assert keys == sorted(keys)


def make_events(rows: list[tuple[str, str | None, float, int]]) -> ibis.Table:
    units, labels, secs, seqs = zip(*rows, strict=True) if rows else ((), (), (), ())
    ts = [T0 + dt.timedelta(seconds=s) for s in secs]
    return ibis.memtable(pa.table([list(units), list(labels), ts, list(seqs)], schema=SCHEMA))


def test_ties_in_ts_follow_input_order_and_null_labels_are_dropped():
    events = make_events([("u", "B", 0, 2), ("u", "A", 0, 1), ("u", None, 5, 3), ("u", "C", 10, 4)])
    result = transitions_result(events, con=ibis.duckdb.connect())
    assert result == {
        "edges": [
            {"from": "A", "to": "B", "count": 1, "mean_seconds": 0.0},
            {"from": "B", "to": "C", "count": 1, "mean_seconds": 10.0},
        ],
        "starts": {"A": 1},
        "ends": {"C": 1},
        "variants": 1,
    }


def test_collapse_repeats_times_from_entering_the_run():
    rows = [("u", "A", 0, 1), ("u", "A", 60, 2), ("u", "B", 90, 3), ("v", "A", 0, 4), ("v", "B", 30, 5)]
    con = ibis.duckdb.connect()
    plain = transitions_result(make_events(rows), con=con)
    collapsed = transitions_result(make_events(rows), con=con, collapse_repeats=True)
    assert plain["edges"] == [
        {"from": "A", "to": "B", "count": 2, "mean_seconds": 30.0},
        {"from": "A", "to": "A", "count": 1, "mean_seconds": 60.0},
    ]
    assert plain["variants"] == 2
    assert collapsed["edges"] == [{"from": "A", "to": "B", "count": 2, "mean_seconds": 60.0}]
    assert collapsed["variants"] == 1


def test_docs_worked_example():
    """docs/metrics/transitions.md, in hours after 00:00."""
    rows = [
        ("u1", "signup", 9), ("u1", "invite", 10), ("u1", "invite", 10.5), ("u1", "pay", 12),
        ("u2", "signup", 9), ("u2", "pay", 13), ("u2", None, 13.5), ("u3", "signup", 9), ("u3", "pay", 11),
    ]
    events = make_events([(u, lab, h * 3600, i) for i, (u, lab, h) in enumerate(rows)])
    con = ibis.duckdb.connect()
    edge = lambda a, b, n, s: {"from": a, "to": b, "count": n, "mean_seconds": s}  # noqa: E731
    assert transitions_result(events, con=con) == {
        "edges": [edge("signup", "pay", 2, 10800.0), edge("invite", "invite", 1, 1800.0),
                  edge("invite", "pay", 1, 5400.0), edge("signup", "invite", 1, 3600.0)],
        "starts": {"signup": 3},
        "ends": {"pay": 3},
        "variants": 2,
    }
    collapsed = transitions_result(events, con=con, collapse_repeats=True)
    assert collapsed["edges"] == [edge("signup", "pay", 2, 10800.0), edge("invite", "pay", 1, 7200.0),
                                  edge("signup", "invite", 1, 3600.0)]
    assert collapsed["variants"] == 2


def test_expressions_are_lazy_and_named():
    x = transitions(make_events([("u", "A", 0, 1)]))
    assert x.edges.columns == ("from", "to", "count", "mean_seconds")
    assert x.starts.columns == x.ends.columns == ("label", "count")


# --- brute-force oracle ---------------------------------------------------------------------------


def reference(rows: list[tuple[str, str | None, float, int]], collapse: bool) -> dict:
    """Written from the definition alone: sort each unit by (ts, seq, label), zip neighbours."""
    by_unit: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    for unit, label, sec, seq in rows:
        if label is not None:
            by_unit[unit].append((sec, seq, label))
    counts: Counter = Counter()
    seconds: dict[tuple[str, str], list[float]] = defaultdict(list)
    starts: Counter = Counter()
    ends: Counter = Counter()
    paths = set()
    for events in by_unit.values():
        events.sort()
        if collapse:
            events = [e for i, e in enumerate(events) if i == 0 or events[i - 1][2] != e[2]]
        for (t1, _, a), (t2, _, b) in zip(events, events[1:], strict=False):
            counts[(a, b)] += 1
            seconds[(a, b)].append(t2 - t1)
        starts[events[0][2]] += 1
        ends[events[-1][2]] += 1
        paths.add(tuple(e[2] for e in events))
    edges = {k: (c, sum(seconds[k]) / c) for k, c in counts.items()}
    return {"edges": edges, "starts": dict(starts), "ends": dict(ends), "variants": len(paths)}


event_rows = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "u3"]),
        st.sampled_from(["A", "B", "C", None]),
        st.sampled_from([0, 0.5, 1, 2.000001, 3600, 86400 * 40.25]),  # few values: ties are common
    ),
    max_size=30,
)


@settings(max_examples=100, deadline=None)
@given(raw=event_rows, order=st.randoms(use_true_random=False), collapse=st.booleans())
def test_agrees_with_brute_force_reference(raw, order, collapse):
    seqs = list(range(len(raw)))
    order.shuffle(seqs)  # input order need not match row order
    rows = [(u, lab, sec, seq) for (u, lab, sec), seq in zip(raw, seqs, strict=True)]
    got = transitions_result(make_events(rows), con=ibis.duckdb.connect(), collapse_repeats=collapse)
    want = reference(rows, collapse)
    assert {(e["from"], e["to"]): e["count"] for e in got["edges"]} == {k: c for k, (c, _) in want["edges"].items()}
    for e in got["edges"]:
        assert e["mean_seconds"] == pytest.approx(want["edges"][(e["from"], e["to"])][1], rel=1e-12, abs=1e-9)
    keys = [(-e["count"], e["from"], e["to"]) for e in got["edges"]]
    assert keys == sorted(keys)
    assert got["starts"] == want["starts"]
    assert got["ends"] == want["ends"]
    assert got["variants"] == want["variants"]


# --- the same expressions on Spark -----------------------------------------------------------------


def synthetic_log(n_units: int = 300, seed: int = 7) -> pa.Table:
    """Ties, repeats and NULL labels, with seq out of row order."""
    import random

    rng = random.Random(seed)
    rows = []
    for u in range(n_units):
        for _ in range(rng.randint(1, 12)):
            label = rng.choice(["visit", "signup", "invite", "pay", None])
            seconds = rng.choice([0, 1, 1.5, 60, 3600]) * rng.randint(0, 5)
            rows.append((f"c{u}", label, T0 + dt.timedelta(seconds=seconds)))
    seqs = list(range(len(rows)))
    rng.shuffle(seqs)
    units, labels, ts = zip(*rows, strict=True)
    names = [CASE, ACTIVITY, TIMESTAMP, "seq"]
    return pa.table([list(units), list(labels), pa.array(ts, pa.timestamp("us", tz="UTC")), seqs], names=names)


@pytest.mark.spark
@pytest.mark.parametrize("collapse", [False, True])
def test_spark_matches_duckdb(spark_session, tmp_path, collapse):
    for name, table in [("receipt", read_log("receipt.csv")), ("synthetic", synthetic_log())]:
        path = str(tmp_path / f"{name}.parquet")
        pq.write_table(table, path)
        kw = {"unit": CASE, "label": ACTIVITY, "ts": TIMESTAMP, "collapse_repeats": collapse}
        duck = ibis.duckdb.connect()
        spark = ibis.pyspark.connect(spark_session)
        on_duck = transitions_result(duck.read_parquet(path), con=duck, **kw)
        on_spark = transitions_result(spark.read_parquet(path), con=spark, **kw)
        # Averages may differ in the last bits (DuckDB and Spark sum in different orders).
        means = [e.pop("mean_seconds") for e in on_duck["edges"]]
        assert [e.pop("mean_seconds") for e in on_spark["edges"]] == pytest.approx(means, rel=1e-12)
        assert on_spark == on_duck
        if name == "receipt" and not collapse:
            assert (len(on_spark["edges"]), on_spark["variants"]) == (99, 116)
