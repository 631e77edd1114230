"""What a JSON API request costs the server with and without the compiled-SQL cache (run on demand).

    .venv/bin/python benchmarks/bench_server_reads.py [--events 1000000] [--runs 5] [--workdir DIR]

The log is `events.event_table(n)` with benchmarks/bench_definition.py's journeymap.yml, loaded and refreshed
(journey state folded) into a workspace, which the server (journeymap.server.app, in this process through
ASGI) then holds. Each request below builds a new engine on its own cursor, as every request does; only
engine.compile_cache (process-wide) carries compiled SQL from one request to the next. The server's cache of
results (server/cache.py) is emptied before each request, as new data empties it: each request computes its
analysis, as the first view of a page after a refresh does. Per request, in one run:

- `no cache`: the cache off (compile_cache.SIZE = 0): every statement compiled, as before the cache;
- `first`: the first request after the cache was emptied (what a CLI command, one process each, pays);
- `again`: the same request again (the page viewed after the next refresh, the JSON API polled).

Medians of --runs; every response of the three is checked equal (apart from the map's generated_at) before
a time is printed. `--workdir` keeps the loaded workspace between invocations.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

REQUESTS = {
    "map (no insights)": ("map", {"insights": "false"}),
    "funnel, 4 steps": ("funnel", {"steps": "event_00,event_01,event_02,event_03"}),
    "retention": ("retention", {"start": "event_00", "return": "event_01"}),
    "lifecycle": ("lifecycle", {}),
    "stickiness": ("stickiness", {}),
    "paths from event_00": ("paths", {"start": "event_00"}),
    "transitions": ("transitions", {}),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workdir", help="keep the loaded workspace here (reused when it holds --events events)")
    args = ap.parse_args()

    import pyarrow.parquet as pq
    from fastapi.testclient import TestClient

    sys.path.insert(0, str(HERE))
    from bench_definition import write_definition
    from events import event_table

    from journeymap.engine import compile_cache
    from journeymap.server.app import create_app
    from journeymap.server.keys import create_key
    from journeymap.workspace import Workspace

    work = Path(args.workdir or tempfile.mkdtemp(prefix="jm-bench-reads-"))
    ws_dir = work / f"ws-{args.events}"
    if not (ws_dir / "journeymap.duckdb").exists():
        ws_dir.mkdir(parents=True)
        pq.write_table(event_table(args.events), work / f"events-{args.events}.parquet")
        write_definition(ws_dir)
        with Workspace(ws_dir) as ws:
            ws.ingest([str(work / f"events-{args.events}.parquet")])
    with Workspace(ws_dir) as ws:
        _, token = create_key(ws.con, "read", "bench-server-reads")

    def body(response) -> dict:
        assert response.status_code == 200, response.text
        out = response.json()
        out.pop("generated_at", None)
        return out

    rows = []
    with TestClient(create_app(ws_dir)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        for label, (name, params) in REQUESTS.items():
            def get(name=name, params=params):
                client.app.state.cache.clear()  # the server's results: as the first request after new data
                t = time.perf_counter()
                response = client.get(f"/api/v1/{name}", params=params)
                return time.perf_counter() - t, body(response)

            uncached, first, again, answers = [], [], [], []
            for _ in range(args.runs):
                compile_cache.clear()
                size, compile_cache.SIZE = compile_cache.SIZE, 0
                try:
                    seconds, answer = get()
                finally:
                    compile_cache.SIZE = size
                uncached.append(seconds)
                answers.append(answer)
                compile_cache.clear()
                seconds, answer = get()
                first.append(seconds)
                answers.append(answer)
                hits = compile_cache.stats["hits"]
                seconds, answer = get()
                again.append(seconds)
                answers.append(answer)
                assert compile_cache.stats["hits"] > hits, f"{label}: no statement came from the cache"
            assert all(a == answers[0] for a in answers), f"{label}: the answers differ"
            rows.append((label, statistics.median(uncached), statistics.median(first), statistics.median(again),
                         compile_cache.stats["hits"] - hits))

    load = os.getloadavg()[0]
    print(f"{args.events:,} events; median of {args.runs} runs; {os.cpu_count()} cores, load {load:.2f}")
    print("| request | no cache | first | again | again / no cache | statements from the cache |")
    print("|---|---|---|---|---|---|")
    for label, uncached, first, again, hits in rows:
        print(f"| {label} | {uncached:.3f} s | {first:.3f} s | {again:.3f} s | {again / uncached:.2f} | {hits} |")
    print(json.dumps({"events": args.events, "rows": rows}))


if __name__ == "__main__":
    main()
