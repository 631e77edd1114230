"""`journeymap risk` and `journeymap health`: churn risk with reasons, and the health score.

JSON output is documented in docs/metrics/health-and-risk.md."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from journeymap.cli.common import JsonOpt, WorkspaceOpt, err, fail, pct, print_json, workspace_for
from journeymap.journey.durations import parse_duration

AtOpt = Annotated[str | None, typer.Option("--at", help="Scoring date (YYYY-MM-DD); default: the day after the last event.")]
HorizonOpt = Annotated[str, typer.Option("--horizon", help="Churn within this long after the scoring date, e.g. 90d.")]


def _at(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        fail(f"--at {text!r} is not a date: write YYYY-MM-DD")


def _horizon(text: str) -> int:
    try:
        days = parse_duration(text) / 86400
    except ValueError as exc:
        fail(str(exc))
    if days < 1:
        fail("--horizon must be at least 1d")
    return int(round(days))


def _bar(quiet: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), console=err,
                    transient=True, disable=quiet or not err.is_terminal)


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def print_evaluation(out: Console, ev: dict) -> None:
    t = Table("held-out", "ROC-AUC", "PR-AUC", "Brier", "rows", "churned", title=(
        f"{ev['horizon_days']}-day churn, held out {', '.join(ev['split']['test'])} "
        f"(trained to {ev['split']['train'][-1]}, calibrated {ev['calibration']})"))
    for name in ("model", "logistic", "recency_only"):
        e = ev[name]
        label = ev["estimator"] if name == "model" else name
        t.add_row(label, _num(e["roc_auc"]), _num(e["pr_auc"]), _num(e["brier"], 4), f"{e['rows']:,}", f"{e['churned']:,}")
    out.print(t)
    c = Table("decile", "predicted", "observed", "count", title="calibration (held-out)")
    for row in ev["model"]["calibration"]:
        c.add_row(str(row["decile"]), pct(row["predicted"]), pct(row["observed"]), str(row["count"]))
    out.print(c)


def register(app: typer.Typer) -> None:
    @app.command()
    def risk(
        workspace: WorkspaceOpt = Path("."),
        at: AtOpt = None,
        top: Annotated[int, typer.Option("--top", help="Accounts to list, riskiest first (0: all).")] = 20,
        horizon: HorizonOpt = "90d",
        model: Annotated[str, typer.Option("--model", help="gbm or logistic.")] = "gbm",
        as_json: JsonOpt = False,
    ):
        """Churn risk per paying account, riskiest first, with the top 3 reasons, and the model's
        held-out evaluation (ROC-AUC, PR-AUC, Brier, calibration) against two baselines."""
        when, days = _at(at), _horizon(horizon)
        with workspace_for(workspace) as ws, _bar(as_json) as bar:
            task = bar.add_task("churn risk", total=1.0)
            result = ws.risk(at=when, horizon_days=days, model=model, top=top or None,
                             progress=lambda m, f: bar.update(task, description=m, completed=f))
        if as_json:
            print_json(result)
            return
        out = Console()
        t = Table("account", "risk", "MRR", "stage", "reasons",
                  title=f"{result['paying_accounts']:,} paying accounts at {result['at'][:10]}, "
                        f"mean {result['horizon_days']}-day churn risk {pct(result['mean_risk'])}")
        for a in result["accounts"]:
            t.add_row(a["unit_id"], pct(a["risk"]), "–" if a["mrr"] is None else f"{a['mrr']:,.0f}", str(a["stage"] or "–"),
                      "\n".join(f"{r['text']} (+{100 * r['risk_drop']:.1f} pts)" for r in a["reasons"]) or "–")
        out.print(t)
        print_evaluation(out, result["evaluation"])

    @app.command()
    def health(
        workspace: WorkspaceOpt = Path("."),
        at: AtOpt = None,
        horizon: HorizonOpt = "90d",
        weights: Annotated[str, typer.Option("--weights", help="auto, config or learned.")] = "auto",
        top: Annotated[int, typer.Option("--top", help="Accounts to list, least healthy first (0: all; JSON has all).")] = 20,
        as_json: JsonOpt = False,
    ):
        """Health score 0-100 per paying account with its band, the backtest of the score against churn
        on held-out dates (AUC, churn rate per band), and expansion signals."""
        when, days = _at(at), _horizon(horizon)
        with workspace_for(workspace) as ws, _bar(as_json) as bar:
            task = bar.add_task("health", total=1.0)
            result = ws.health(at=when, horizon_days=days, weights=weights,
                               progress=lambda m, f: bar.update(task, description=m, completed=f))
        if as_json:
            print_json(result)
            return
        out = Console()
        w = Table("component", "feature", "direction", "weight", title=f"weights ({result['weights']['source']})")
        for c in result["weights"]["components"]:
            w.add_row(c["name"], c["feature"], c["direction"].replace("_", " "), pct(c["weight"]))
        out.print(w)
        bt = result["backtest"]
        b = Table("band", "score", "accounts now", "backtest rows", f"churned in {days}d", title=(
            f"backtest on {', '.join(bt['dates'])}: ROC-AUC of (100 - health) {_num(bt['roc_auc'])}, base rate {pct(bt['base_rate'])}"))
        now = {x["band"]: x["accounts"] for x in result["bands"]}
        for row in bt["bands"]:
            b.add_row(row["band"], f"{row['from']:.0f}-{row['to']:.0f}", f"{now[row['band']]:,}", f"{row['rows']:,}",
                      pct(row["churn_rate"]))
        out.print(b)
        t = Table("account", "health", "band", "band churn", "MRR", "expansion", title=f"accounts at {result['at'][:10]}")
        for a in result["accounts"][: top or None]:
            t.add_row(a["unit_id"], f"{a['health']:.0f}", a["band"], pct(a["band_churn_rate"]),
                      "–" if a["mrr"] is None else f"{a['mrr']:,.0f}", ", ".join(a["expansion"]) or "–")
        out.print(t)
        e = result["expansion"]
        out.print(f"expansion signals: {e['high_utilisation']:,} accounts at >= {e['utilisation_threshold']:.0%} seat "
                  f"utilisation, {e['growing_usage']:,} with usage growing >= {e['trend_threshold']}x")
