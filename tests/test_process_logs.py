"""Published process logs through the real CLI: ingest with a mapping, then `transitions --json`.

The expected numbers come from the logs' own reference files (../shared/data/README.md), not from us.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import invoke_cli, invoke_json, run_cli

MAPPING = """
sources:
  log:
    fields:
      user_id: "case:concept:name"
      event: "concept:name"
      ts: "time:timestamp"
stages:
  - {id: started, name: Started, entry: register request}
"""


def read_dfg(path: Path) -> tuple[dict, dict, dict]:
    """The .dfg format: activity count and names, then counted start and end lists, then every
    remaining line an edge `a>bxN` by activity index."""
    lines = path.read_text().split("\n")
    n = int(lines[0])
    names = lines[1 : 1 + n]
    i = 1 + n

    def counts(i: int) -> tuple[dict, int]:
        k = int(lines[i])
        out = {}
        for line in lines[i + 1 : i + 1 + k]:
            key, count = line.split("x")
            out[key] = int(count)
        return out, i + 1 + k

    starts, i = counts(i)
    ends, i = counts(i)
    edges = {}
    for line in filter(None, lines[i:]):
        key, count = line.split("x")
        edges[key] = int(count)
    starts = {names[int(k)]: v for k, v in starts.items()}
    ends = {names[int(k)]: v for k, v in ends.items()}
    edges = {(names[int(k.split(">")[0])], names[int(k.split(">")[1])]): v for k, v in edges.items()}
    return starts, ends, edges


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "journeymap.yml").write_text(MAPPING)
    return ws


def test_running_example_matches_its_published_dfg(tmp_path, shared_data):
    ws = _workspace(tmp_path)
    log = shared_data / "process_logs" / "running-example.csv"
    loaded = invoke_json("ingest", str(log), "--source", "log", "--workspace", str(ws))
    assert (loaded["accepted"], loaded["rejected"]) == (42, 0)
    again = invoke_json("ingest", str(log), "--source", "log", "--workspace", str(ws))
    assert (again["accepted"], again["duplicate"]) == (0, 42)

    result = invoke_json("transitions", "--workspace", str(ws), "--level", "event")
    starts, ends, edges = read_dfg(shared_data / "process_logs" / "running-example.dfg")
    assert {(e["from"], e["to"]): e["count"] for e in result["edges"]} == edges
    assert len(result["edges"]) == 16
    assert result["starts"] == starts == {"register request": 6}
    assert result["ends"] == ends == {"pay compensation": 3, "reject request": 3}
    assert result["variants"] == 6
    assert set(result["edges"][0]) == {"from", "to", "count", "mean_seconds"}


def test_receipt_log_has_the_published_shape(tmp_path, shared_data):
    ws = _workspace(tmp_path)
    loaded = invoke_json("ingest", str(shared_data / "process_logs" / "receipt.csv"), "--source", "log", "--workspace", str(ws))
    assert (loaded["accepted"], loaded["rejected"]) == (8577, 0)
    result = invoke_json("transitions", "--workspace", str(ws), "--level", "event")
    assert sum(result["starts"].values()) == 1434  # cases
    assert sum(e["count"] for e in result["edges"]) + 1434 == 8577  # events
    assert result["variants"] == 116
    assert len(result["edges"]) == 99


def test_errors_are_clear_and_exit_non_zero(tmp_path):
    proc = run_cli("transitions", "--workspace", str(tmp_path), "--json", check=False)  # the installed command's exit status
    assert proc.returncode == 3 and "no events yet" in proc.stderr  # not enough data
    nowhere = invoke_cli("map", "--workspace", str(tmp_path / "nowhere"), "--json", check=False)
    assert nowhere.returncode == 1 and "no such workspace folder" in nowhere.stderr
    missing = invoke_cli("ingest", str(tmp_path / "nope.csv"), "--workspace", str(tmp_path), check=False)
    assert missing.returncode == 1 and "nope.csv: no such file" in missing.stderr


@pytest.mark.parametrize("level", ["stage", "touchpoint"])
def test_other_levels_need_a_definition(tmp_path, level):
    proc = invoke_cli("transitions", "--workspace", str(tmp_path), "--level", level, check=False)
    assert proc.returncode == 1  # a definition error: journeymap.yml is missing
    assert "journeymap.yml" in proc.stderr


@pytest.mark.parametrize("name", ["running-example", "receipt", "helpdesk", "bpic2012"])
def test_canonical_eval_logs_give_the_direct_count(tmp_path, shared_eval, name):
    """Each real log in ../shared/eval/canonical, ingested as is: `transitions` equals a count straight from
    the file. The Helpdesk log repeats 127 of its rows exactly (same case, activity and second); each
    repeat is an event of its own, so its self-loops are counted too."""
    import csv
    import datetime as dt
    import gzip
    from collections import Counter

    path = shared_eval / "canonical" / f"{name}.csv.gz"
    with gzip.open(path, "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cases: dict[str, list] = {}
    for i, r in enumerate(rows):  # a case's events by time, ties in file order (journeymap's seq)
        cases.setdefault(r["customer_id"], []).append((dt.datetime.fromisoformat(r["ts"]), i, r["event"]))
    starts, ends, edges, variants = Counter(), Counter(), Counter(), set()
    for events in cases.values():
        names = [e for _, _, e in sorted(events)]
        starts[names[0]] += 1
        ends[names[-1]] += 1
        edges.update(zip(names, names[1:]))
        variants.add(tuple(names))

    ws = tmp_path / "ws"
    ws.mkdir()
    loaded = invoke_json("ingest", str(path), "--workspace", str(ws))
    assert (loaded["accepted"], loaded["duplicate"], loaded["rejected"]) == (len(rows), 0, 0)
    result = invoke_json("transitions", "--workspace", str(ws), "--level", "event")
    assert {(e["from"], e["to"]): e["count"] for e in result["edges"]} == dict(edges)
    assert (result["starts"], result["ends"], result["variants"]) == (dict(starts), dict(ends), len(variants))
    if name == "helpdesk":
        repeated = len(rows) - len({tuple(r.values()) for r in rows})
        assert repeated == 127  # the log's own repeats (shared/eval/README.md), each kept
