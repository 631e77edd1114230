"""Paths and variants: brute-force references on random logs, reconciliation, known answers on a real log,
the CLI, and DuckDB vs Spark. Definitions: docs/metrics/paths.md."""

from __future__ import annotations

import csv
import datetime as dt
import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import ibis
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from journeymap.cli.main import app as cli_app
from journeymap.engine.paths import labelled_events, paths_result
from journeymap.engine.variants import variants_result
from journeymap.workspace import Workspace

PHASES = [Phase.explicit, Phase.generate]  # shrinking a workspace-per-example test takes minutes
T0 = dt.datetime(2024, 1, 1)
DEFINITION = {
    "name": "Paths test",
    "stages": [{"id": "s_a", "name": "SA", "entry": "A"}, {"id": "s_b", "name": "SB", "entry": "B"},
               {"id": "s_c", "name": "SC", "entry": "C"}],
    "touchpoints": [{"id": "tp_ad", "name": "A or D", "match": {"event": ["A", "D"]}},
                    {"id": "tp_e", "name": "E", "match": {"event": ["E"]}}],
}
ACCOUNT = {"c0": None, "c1": "a1", "c2": "a1", "c3": "a2"}
STAGE = {"A": "s_a", "B": "s_b", "C": "s_c"}
TOUCHPOINT = {"A": "tp_ad", "D": "tp_ad", "E": "tp_e"}
ALPHABET = {"event": ["A", "B", "C", "D", "E"], "stage": ["s_a", "s_b", "s_c"], "touchpoint": ["tp_ad", "tp_e"]}


def make_workspace(base: Path, rows: list[tuple[str, str, dt.datetime, str | None]]) -> Workspace:
    """A real workspace from canonical CSV rows (customer, event, ts, account); file order is input order."""
    base.mkdir(parents=True, exist_ok=True)
    path = base / "events.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["customer_id", "event", "ts", "account_id", "properties"])
        for i, (who, event, ts, account) in enumerate(rows):
            # A distinct property keeps identical rows from being deduplicated as resends.
            w.writerow([who, event, ts.isoformat() + "Z", account or "", json.dumps({"row": i})])
    ws = Workspace(base / "ws")
    ws.path.mkdir()
    (ws.path / "journeymap.yml").write_text(json.dumps(DEFINITION))
    (report,) = ws.ingest([str(path)])
    assert report.accepted == len(rows)
    return ws


# --- brute-force references, written from docs/metrics/paths.md alone ------------------------------------


def ref_sequences(rows, level: str, by: str) -> dict[str, list[tuple[dt.datetime, str]]]:
    """Each unit's labelled events in (ts, input order), as (ts, label)."""
    units: dict[str, list] = defaultdict(list)
    for i, (who, event, ts, account) in enumerate(rows):
        unit = who if by == "person" else account
        if unit is not None:
            units[unit].append((ts, i, event))
    out = {}
    for unit, evs in units.items():
        evs.sort()
        if level == "event":
            seq = [(t, e) for t, _, e in evs]
        elif level == "touchpoint":
            seq = [(t, TOUCHPOINT[e]) for t, _, e in evs if e in TOUCHPOINT]
        else:  # stage visits: consecutive hits of one stage are one visit, entered at its first event
            hits = [(t, STAGE[e]) for t, _, e in evs if e in STAGE]
            seq = [h for k, h in enumerate(hits) if k == 0 or hits[k - 1][1] != h[1]]
        if seq:
            out[unit] = seq
    return out


def collapse(seq):
    return [x for k, x in enumerate(seq) if k == 0 or seq[k - 1][1] != x[1]]


def ref_paths(seqs, start=None, end=None, before=None, depth=None, top=None, collapse_repeats=False) -> dict:
    shown = []  # per unit: [(depth, label)]
    for seq in seqs.values():
        labels = [lab for _, lab in (collapse(seq) if collapse_repeats else seq)]
        if before is not None:
            if before not in labels:
                continue
            i = labels.index(before)
            lo = 0 if depth is None else max(0, i - depth)
            steps = [(k - i, labels[k]) for k in range(lo, i + 1)]
            if lo == 0 and (depth is None or i + 1 <= depth):
                steps.insert(0, (-i - 1, "start"))
        else:
            if start is not None and start not in labels:
                continue
            sub = labels[labels.index(start):] if start is not None else labels
            if end is not None:
                if end not in sub:
                    continue
                sub = sub[: sub.index(end) + 1]
            steps = [(k, lab) for k, lab in enumerate(sub) if depth is None or k <= depth]
            if depth is None or len(sub) <= depth:
                steps.append((len(sub), "end"))
        shown.append(steps)
    path_counts = Counter(tuple(lab for _, lab in s) for s in shown)
    ranked = sorted(path_counts, key=lambda p: (-path_counts[p], p))
    kept = set(ranked[:top]) if top is not None else set(ranked)
    total = len(seqs)
    nodes, links, paths, other = Counter(), Counter(), Counter(), 0
    for s in shown:
        p = tuple(lab for _, lab in s)
        if p not in kept:
            other += 1
            s = [(d, lab if lab in ("start", "end") else "other") for d, lab in s]
        else:
            paths[p] += 1
        for d, lab in s:
            nodes[(d, lab)] += 1
        for (d, a), (_, b) in zip(s, s[1:], strict=False):
            links[(d, a, b)] += 1
    path_rows = [{"path": list(p), "count": n, "share": n / total} for p, n in paths.items()]
    path_rows.sort(key=lambda r: (-r["count"], r["path"]))
    if top is not None:
        path_rows.append({"path": ["other"], "count": other, "share": other / total if total else 0.0, "other": True})
    reached = Counter()
    for (d, _), n in nodes.items():
        reached[d] += n
    return {
        "units_total": total,
        "units": len(shown),
        "nodes": sorted(({"depth": d, "label": lab, "count": n, "share": n / total} for (d, lab), n in nodes.items()),
                        key=lambda r: (r["depth"], -r["count"], r["label"])),
        "links": sorted(({"depth": d, "from": a, "to": b, "count": n} for (d, a, b), n in links.items()),
                        key=lambda r: (r["depth"], -r["count"], r["from"], r["to"])),
        "reached": [{"depth": d, "units": n} for d, n in sorted(reached.items())],
        "paths": path_rows,
    }


def ref_variants(seqs, converted=None, top=None, collapse_repeats=False) -> dict:
    units = []
    for seq in seqs.values():
        labels = tuple(lab for _, lab in (collapse(seq) if collapse_repeats else seq))
        seconds = (seq[-1][0] - seq[0][0]).total_seconds()  # duration over all labelled events
        units.append((labels, seconds, converted in labels))
    counts = Counter(u[0] for u in units)
    ranked = sorted(counts, key=lambda p: (-counts[p], p))
    kept = set(ranked[:top]) if top is not None else set(ranked)
    groups = defaultdict(list)
    for u in units:
        groups[u[0] if u[0] in kept else None].append(u)

    def row(path, us):
        conv = sum(c for _, _, c in us)
        return {"path": path, "count": len(us), "share": len(us) / len(units) if units else 0.0,
                "median_seconds": statistics.median(s for _, s, _ in us) if us else None,
                "converted": conv if converted is not None else None,
                "dropped": len(us) - conv if converted is not None else None}

    rows = sorted((row(list(p), us) for p, us in groups.items() if p is not None),
                  key=lambda r: (-r["count"], r["path"]))
    if top is not None:
        rows.append({**row(["other"], groups.get(None, [])), "other": True})
    return {"units": len(units), "distinct": len(counts), "converted_label": converted, "variants": rows}


def check_paths_reconcile(r: dict, depth: int | None, before: bool) -> None:
    """Counts at every depth sum to the units reaching it; links carry every unit on; paths sum to the view."""
    by_depth = Counter()
    for n in r["nodes"]:
        by_depth[n["depth"]] += n["count"]
    assert [{"depth": d, "units": n} for d, n in sorted(by_depth.items())] == r["reached"]
    assert sum(p["count"] for p in r["paths"]) == r["units"]
    assert sum(p["share"] for p in r["paths"]) == pytest.approx(r["units"] / r["units_total"] if r["units_total"] else 0)
    out_links, in_links = Counter(), Counter()
    for e in r["links"]:
        out_links[(e["depth"], e["from"])] += e["count"]
        in_links[(e["depth"] + 1, e["to"])] += e["count"]
    for n in r["nodes"]:
        key = (n["depth"], n["label"])
        if before:  # everything before the anchor flows on to it
            if n["depth"] < 0:
                assert out_links[key] == n["count"]
        else:
            assert n["depth"] == 0 or in_links[key] == n["count"]  # every step after 0 has a predecessor
            if n["label"] != "end" and (depth is None or n["depth"] < depth):
                assert out_links[key] == n["count"]  # a unit goes on or shows an explicit end
    if not before:
        assert r["reached"] == [] or r["reached"][0] == {"depth": 0, "units": r["units"]}
        sizes = [x["units"] for x in r["reached"]]
        assert sizes == sorted(sizes, reverse=True)


def check_variants_reconcile(r: dict) -> None:
    assert sum(v["count"] for v in r["variants"]) == r["units"]
    if r["units"]:
        assert sum(v["share"] for v in r["variants"]) == pytest.approx(1.0)
    for v in r["variants"]:
        if v["converted"] is not None:
            assert v["converted"] + v["dropped"] == v["count"]


def assert_variants_equal(got: dict, want: dict) -> None:
    gm = [v.pop("median_seconds") for v in got["variants"]]
    wm = [v.pop("median_seconds") for v in want["variants"]]
    assert got == want
    assert [None if m is None else pytest.approx(m, abs=1e-6) for m in wm] == gm


# --- random logs through a real workspace ------------------------------------------------------------------

OFFSETS = [0, 0, 3600, 86400, 86400 * 1.5, 86400 * 40.25]  # few values: ties in ts are common
rows_st = st.lists(
    st.tuples(st.sampled_from(sorted(ACCOUNT)), st.sampled_from(ALPHABET["event"]), st.sampled_from(OFFSETS)),
    min_size=1, max_size=25,
)


@st.composite
def options(draw, level: str):
    anchor = st.none() | st.sampled_from([*ALPHABET[level], "missing"])
    kw = {"depth": draw(st.none() | st.integers(0, 3)), "top": draw(st.none() | st.integers(0, 3)),
          "collapse_repeats": draw(st.booleans())}
    if draw(st.booleans()):
        kw["before"] = draw(anchor)
    else:
        kw["start"], kw["end"] = draw(anchor), draw(anchor)
    return kw


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], phases=PHASES)
@given(raw=rows_st, level=st.sampled_from(["event", "stage", "touchpoint"]), by=st.sampled_from(["person", "account"]),
       data=st.data())
def test_paths_and_variants_agree_with_brute_force(tmp_path_factory, raw, level, by, data):
    rows = [(who, event, T0 + dt.timedelta(seconds=sec), ACCOUNT[who]) for who, event, sec in raw]
    ws = make_workspace(tmp_path_factory.mktemp("random"), rows)
    try:
        events = labelled_events(ws.engine, ws.definition, level, by)
        seqs = ref_sequences(rows, level, by)
        kw = data.draw(options(level))
        got = paths_result(events, **kw)
        assert got.pop("options") == {"start": None, "end": None, "before": None, **kw}
        assert got == ref_paths(seqs, **kw)
        check_paths_reconcile(got, kw["depth"], kw.get("before") is not None)

        vkw = {"converted": data.draw(st.none() | st.sampled_from(ALPHABET[level])), "top": kw["top"],
               "collapse_repeats": kw["collapse_repeats"]}
        got_v = variants_result(events, **vkw)
        check_variants_reconcile(got_v)
        assert_variants_equal(got_v, ref_variants(seqs, **vkw))
    finally:
        ws.close()


# --- known answers on the running example (van der Aalst's six-case process log) ----------------------------


def read_running_example(shared_data: Path) -> list[tuple[str, str, dt.datetime, str]]:
    """(case, activity, naive UTC ts, account) in file order, read with the csv module alone."""
    out = []
    with (shared_data / "process_logs" / "running-example.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            ts = dt.datetime.fromisoformat(r["time:timestamp"]).astimezone(dt.UTC).replace(tzinfo=None)
            case = r["case:concept:name"]
            out.append((case, r["concept:name"], ts, "odd" if int(case) % 2 else "even"))
    return out


@pytest.fixture(scope="module")
def running(shared_data, tmp_path_factory):
    rows = read_running_example(shared_data)
    ws = make_workspace(tmp_path_factory.mktemp("running"), rows)
    yield ws, rows
    ws.close()


def test_running_example_variants(running):
    ws, rows = running
    events = labelled_events(ws.engine, ws.definition, "event", "person")
    r = variants_result(events, converted="pay compensation")
    seqs = ref_sequences(rows, "event", "person")
    assert len(seqs) == 6 and r["units"] == 6 and r["distinct"] == 6
    assert [v["count"] for v in r["variants"]] == [1] * 6
    assert {v["converted"] for v in r["variants"]} == {0, 1}
    assert sum(v["converted"] for v in r["variants"]) == 3  # cases 2, 3, 6 are paid; 1, 4, 5 rejected
    assert_variants_equal(r, ref_variants(seqs, converted="pay compensation"))


def test_running_example_docs_worked_example(running):
    """docs/metrics/paths.md: every number there is asserted here."""
    ws, _ = running
    events = labelled_events(ws.engine, ws.definition, "event", "person")
    r = paths_result(events, start="register request", depth=2, top=2)
    assert (r["units_total"], r["units"]) == (6, 6)
    assert [(n["depth"], n["label"], n["count"]) for n in r["nodes"]] == [
        (0, "register request", 4), (0, "other", 2),
        (1, "examine casually", 3), (1, "other", 2), (1, "check ticket", 1),
        (2, "check ticket", 3), (2, "other", 2), (2, "examine casually", 1),
    ]
    assert r["paths"] == [
        {"path": ["register request", "examine casually", "check ticket"], "count": 3, "share": 3 / 6},
        {"path": ["register request", "check ticket", "examine casually"], "count": 1, "share": 1 / 6},
        {"path": ["other"], "count": 2, "share": 2 / 6, "other": True},
    ]
    assert r["links"][:2] == [{"depth": 0, "from": "register request", "to": "examine casually", "count": 3},
                              {"depth": 0, "from": "other", "to": "other", "count": 2}]
    full = paths_result(events, start="register request", depth=2)
    assert [(n["depth"], n["label"], n["count"]) for n in full["nodes"]] == [
        (0, "register request", 6),
        (1, "examine casually", 3), (1, "check ticket", 2), (1, "examine thoroughly", 1),
        (2, "check ticket", 4), (2, "examine casually", 1), (2, "examine thoroughly", 1),
    ]
    ending = paths_result(events, start="decide", end="decide")  # a one-step path, then end
    assert [(n["depth"], n["label"], n["count"]) for n in ending["nodes"]] == [(0, "decide", 6), (1, "end", 6)]
    before = paths_result(events, before="decide", depth=2)
    assert [(n["depth"], n["label"], n["count"]) for n in before["nodes"]] == [
        (-2, "examine casually", 3), (-2, "check ticket", 2), (-2, "examine thoroughly", 1),
        (-1, "check ticket", 4), (-1, "examine casually", 1), (-1, "examine thoroughly", 1),
        (0, "decide", 6),
    ]
    v = variants_result(events, converted="pay compensation", top=2)
    assert [(x["path"][-1], x["count"], x["median_seconds"], x["converted"], x["dropped"]) for x in v["variants"]] == [
        ("pay compensation", 1, 779_580.0, 1, 0),  # case 2: 30 Dec 10:32 UTC to 8 Jan 11:05 UTC
        ("reject request", 1, 520_920.0, 0, 1),    # case 4: 6 Jan 14:02 UTC to 12 Jan 14:44 UTC
        ("other", 4, 1_110_540.0, 2, 2),           # cases 1, 6, 3, 5: (852,300 + 1,368,780) / 2
    ]
    assert [x["share"] for x in v["variants"]] == [1 / 6, 1 / 6, 4 / 6]


@pytest.mark.parametrize("by", ["person", "account"])
@pytest.mark.parametrize("kw", [
    {}, {"start": "check ticket"}, {"end": "decide"}, {"start": "examine casually", "end": "decide", "depth": 3},
    {"before": "pay compensation", "depth": 3}, {"before": "reject request"}, {"collapse_repeats": True, "top": 1},
])
def test_running_example_paths_match_reference(running, by, kw):
    ws, rows = running
    events = labelled_events(ws.engine, ws.definition, "event", by)
    got = paths_result(events, **kw)
    got.pop("options")
    assert got == ref_paths(ref_sequences(rows, "event", by), **kw)
    check_paths_reconcile(got, kw.get("depth"), "before" in kw)


# --- CLI ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli():
    app = cli_app
    return lambda *args: CliRunner().invoke(app, list(args))


def test_cli_paths_and_variants_json(running, cli):
    ws, _ = running
    events = labelled_events(ws.engine, ws.definition, "event", "person")
    res = cli("paths", "-w", str(ws.path), "--start", "register request", "--depth", "2", "--top", "2", "--json")
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)
    assert shown.pop("warnings") == []  # every name given occurs (the analysis checks; the engine only counts)
    assert shown == paths_result(events, start="register request", depth=2, top=2)
    res = cli("variants", "-w", str(ws.path), "--converted", "pay compensation", "--top", "2", "--json")
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)
    assert shown.pop("warnings", []) == []
    assert shown == variants_result(events, converted="pay compensation", top=2)
    res = cli("variants", "-w", str(ws.path), "--level", "stage", "--by", "account", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["units"] == 0  # no stage matches these activities


def test_cli_tables(running, cli):
    ws, _ = running
    res = cli("paths", "-w", str(ws.path), "--before", "decide", "--depth", "1")
    assert res.exit_code == 0 and "check ticket" in res.stdout and "6 of 6 units in view" in res.stdout
    res = cli("variants", "-w", str(ws.path), "--converted", "pay compensation", "--top", "3")
    assert res.exit_code == 0 and "other" in res.stdout and "6 distinct variants" in res.stdout


@pytest.mark.parametrize("args, message", [
    (["paths", "--before", "decide", "--start", "decide"], "--before cannot be combined"),
    (["paths", "--level", "funnel"], "--level must be one of"),
    (["variants", "--by", "team"], "--by must be person or account"),
    (["variants", "--top", "-1"], "--top must be at least 0, not '-1'"),
])
def test_cli_errors(running, cli, args, message):
    ws, _ = running
    res = cli(*args, "-w", str(ws.path))
    assert res.exit_code == 2  # a bad option (journeymap.errors.OptionError)
    assert message in res.stderr and res.stdout == ""


# --- DuckDB vs Spark ------------------------------------------------------------------------------------------


@pytest.mark.spark
def test_spark_matches_duckdb(spark_session, running, tmp_path):
    ws, _ = running
    events = labelled_events(ws.engine, ws.definition, "event", "person")
    path = str(tmp_path / "events.parquet")
    ws.engine.execute(events).to_pandas().to_parquet(path)
    duck, spark = ibis.duckdb.connect(), ibis.pyspark.connect(spark_session)
    # One call per anchor mode: a Spark query costs seconds on a 2-core machine.
    for kw in ({"start": "register request", "end": "decide", "depth": 2, "top": 2, "collapse_repeats": True},
               {"before": "pay compensation", "depth": 3, "top": 3}):
        assert paths_result(spark.read_parquet(path), con=spark, **kw) == paths_result(duck.read_parquet(path), con=duck, **kw)
    kw = {"converted": "pay compensation", "top": 2}
    assert variants_result(spark.read_parquet(path), con=spark, **kw) == variants_result(duck.read_parquet(path), con=duck, **kw)
