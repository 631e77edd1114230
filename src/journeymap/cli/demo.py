"""`journeymap demo`: simulate a SaaS business, ingest its exports, compute and render its journey map."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from journeymap.demo import simulate
from journeymap.report import write_map_html
from journeymap.workspace import Workspace


def run_demo(out_dir: Path, accounts: int = 5000, seed: int = 42, console: Console | None = None) -> list[str]:
    console = console or Console(stderr=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    store = Path(out_dir) / "journeymap.duckdb"
    if store.exists():
        store.unlink()  # a demo run starts from a clean store
    with console.status("simulating the business", spinner="dots") as status:
        sim = simulate(out_dir, accounts=accounts, seed=seed, progress=lambda msg, _frac: status.update(msg))
        timings["simulate"] = time.perf_counter() - t0
        with Workspace(sim.workspace) as ws:
            t = time.perf_counter()
            reports = []
            for path, source in sim.files:
                status.update(f"ingesting {Path(path).name}")
                reports += ws.ingest([str(path)], source=source, refresh=False)
            timings["ingest"] = time.perf_counter() - t
            status.update("stitching identities, folding the journey state, fitting the churn model")
            refreshed = ws.refresh()
            timings["identity"] = refreshed.stitch.seconds
            timings["journey state"] = refreshed.state.seconds if refreshed.state else 0.0
            timings["churn model"] = refreshed.risk.seconds if refreshed.risk else 0.0
            timings["playbooks"] = refreshed.act.seconds if refreshed.act else 0.0
            t = time.perf_counter()
            model = ws.journey_map(progress=lambda m, _frac=None: status.update(m))
            timings["map"] = time.perf_counter() - t
        t = time.perf_counter()
        html = write_map_html(model, Path(out_dir) / "journey-map.html")
        timings["render"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    view = model["views"]["all"]
    accepted = sum(r.accepted for r in reports)
    rejected = sum(r.rejected for r in reports)
    met = sum(1 for t in view["targets"] if t["met"])
    lines = [
        f"[bold]journeymap demo[/]: {accounts:,} accounts, seed {seed}",
        f"  events: {accepted:,} accepted, {rejected:,} rejected (planted bad rows go to dead letters)",
        f"  units ({model['level']}s): {view['units']:,}; personas: {', '.join(p['name'] for p in model['personas'][1:])}",
        f"  churn rate: {_pct(view['churn']['rate'])}; time-to-value p50: {_days(view['ttv']['p50_seconds'])}",
        f"  targets met: {met} of {len(view['targets'])}",
        *(["  playbooks (docs/playbooks.md): " + "; ".join(
            f"{p.playbook} {p.entered:,} entered" for p in refreshed.act.playbooks)
           + " (history before each playbook's first evaluation: recorded, nothing sent; `journeymap act --dry-run`)"]
          if refreshed.act is not None and refreshed.act.playbooks else []),
        "  time: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) + f"; total {total:.1f} s",
        f"  journey map: [bold]{html.resolve()}[/]",
    ]
    return lines


def _pct(x):
    return "–" if x is None else f"{100 * x:.1f}%"


def _days(s):
    return "–" if s is None else f"{s / 86400:.1f} days"
