"""Tables for people: how `journeymap NAME` prints each analysis's result without `--json`.

`RENDERERS[name](result, params, view)` prints to stdout; `view` holds the analysis's view options
(`Analysis.view`: rows to show, the grouping of a table). `SPECIAL[name]` adds the few options that are
the terminal's own (the map's `--out`).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.console import Console
from rich.table import Table

from journeymap.cli.common import err, pct, print_json
from journeymap.journey.durations import format_duration

__all__ = ["RENDERERS", "SPECIAL"]

SHOWN = 50  # path and variant rows at most; --top makes the rest one 'other' row, --json has everything


def _out() -> Console:
    return Console()


def _fitting(out: Console, fixed: list[list[str]], columns: list[list[str]]) -> int:
    """How many of `columns` (each its header and cells), from the left, fit the console's width beside the `fixed`
    ones, each at its narrowest (Rich wraps a cell at its spaces, never inside a word; a column adds its padding and
    a border, 3 characters): at least one. Rich squeezes a table wider than the console into columns too narrow
    for anything (80 weekly retention periods printed as bare borders at 80 characters)."""
    def narrowest(texts: list[str]) -> int:
        return max((len(word) for text in texts for word in text.split()), default=0) + 3

    room = out.width - 1 - sum(narrowest(c) for c in fixed)
    shown = 0
    for column in columns:
        room -= narrowest(column)
        if room < 0:
            break
        shown += 1
    return max(shown, 1)


def _keep_whole(table: Table, fixed: list[list[str]]) -> Table:
    """The `fixed` leading columns at their full width (a date cut to '2025-04-…' says nothing)."""
    for column, texts in zip(table.columns, fixed, strict=False):
        column.no_wrap, column.min_width = True, max(map(len, texts))
    return table


def _not_shown(out: Console, heads: list[str], shown: int, what: str) -> None:
    if shown < len(heads):
        out.print(f"{len(heads) - shown} more {what} ({heads[shown]} to {heads[-1]}) do not fit {out.width} "
                  "columns: widen the terminal (or set COLUMNS), or use --json", highlight=False)


def _period_table(out: Console, fixed_heads: tuple[str, str], heads: list[str], rows: list[tuple[str, str, list[str]]],
                  title: str, what: str) -> None:
    """Two leading columns (`rows`' first two cells) and one per period (their lists, one cell per head): the
    periods that fit the console, whole, and a line naming the rest."""
    fixed = [[head, *(r[i] for r in rows)] for i, head in enumerate(fixed_heads)]
    shown = _fitting(out, fixed, [[head, *(r[2][k] for r in rows)] for k, head in enumerate(heads)])
    table = _keep_whole(Table(*fixed_heads, *heads[:shown], title=title), fixed)
    for first, second, cells in rows:
        table.add_row(first, second, *cells[:shown])
    out.print(table)
    _not_shown(out, heads, shown, what)


def _money(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "–" if x is None else format(x, fmt)


def _ci(lo: float | None, hi: float | None, digits: int = 2) -> str:
    return "–" if lo is None or hi is None else f"{lo:.{digits}f}–{hi:.{digits}f}"


def _rows(items: list, view) -> list:
    n = getattr(view, "rows", 0) if view is not None else 0
    return items[:n] if n else items


# -- the map -----------------------------------------------------------------------------------------------


MAP_FILE = "journey-map.html"


def _map_output(result: dict, params, as_json: bool, workspace: Path, out_file: Path | None) -> None:
    """--out writes the HTML there, --json prints the JSON (both: both); neither writes WORKSPACE/journey-map.html
    and prints its path, as `journeymap demo` does: a terminal is no place for the map's JSON."""
    from journeymap.report import write_map_html

    if out_file is None and not as_json:
        out_file = workspace / MAP_FILE
        write_map_html(result, out_file)
        _out().print(f"wrote {out_file}: open it in a browser (--json prints the map as JSON, --out FILE writes it "
                     "elsewhere)", highlight=False, soft_wrap=True)
        return
    if out_file:
        write_map_html(result, out_file)
        err.print(f"wrote {out_file}", highlight=False, soft_wrap=True)
    if as_json:
        print_json(result)


OUT_OPTION = inspect.Parameter("out_file", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
    Path | None, typer.Option("--out", help="Write the HTML journey map here (one self-contained file); without --out "
                                            f"or --json it goes to WORKSPACE/{MAP_FILE}.")])


# -- paths --------------------------------------------------------------------------------------------------


def transitions(result: dict, params, view) -> None:
    table = Table("from", "to", "count", "mean time")
    for e in _rows(result["edges"], view):
        table.add_row(str(e["from"]), str(e["to"]), f"{e['count']:,}", format_duration(e["mean_seconds"]))
    out = _out()
    out.print(table)
    out.print(f"{len(result['edges']):,} edges, {result['variants']:,} variants, {sum(result['starts'].values()):,} units")


def paths(result: dict, params, view) -> None:
    out = _out()
    table = Table("path", "units", "share of all units")
    for p in result["paths"][:SHOWN]:
        table.add_row(" → ".join(p["path"]), f"{p['count']:,}", pct(p["share"]))
    out.print(table)
    if len(result["paths"]) > SHOWN:
        out.print(f"{len(result['paths']) - SHOWN:,} more paths: use --top N to bucket them as 'other', or --json")
    nodes = Table("depth", "step", "units", "share")
    for n in result["nodes"]:
        nodes.add_row(str(n["depth"]), n["label"], f"{n['count']:,}", pct(n["share"]))
    out.print(nodes)
    out.print(f"{result['units']:,} of {result['units_total']:,} units in view, {len(result['links']):,} links")


def variants(result: dict, params, view) -> None:
    out = _out()
    converted = params.converted
    table = Table(*(["variant", "units", "share", "median duration"] + (["converted", "dropped"] if converted else [])))
    for v in result["variants"][:SHOWN]:
        row = [" → ".join(v["path"]), f"{v['count']:,}", pct(v["share"]),
               "–" if v["median_seconds"] is None else format_duration(v["median_seconds"])]
        if converted:
            row += [f"{v['converted']:,}", f"{v['dropped']:,}"]
        table.add_row(*row)
    out.print(table)
    if len(result["variants"]) > SHOWN:
        out.print(f"{len(result['variants']) - SHOWN:,} more variants: use --top N to bucket them as 'other', or --json")
    out.print(f"{result['units']:,} units, {result['distinct']:,} distinct variants")


# -- funnel and cohorts -------------------------------------------------------------------------------------


def _steps_table(title: str, steps: list[dict]) -> Table:
    table = Table("#", "step", "count", "from previous", "from first", "mean time", "median time", title=title)
    for k, s in enumerate(steps):
        table.add_row(str(k), s["name"] + (" (optional)" if s.get("optional") else ""), f"{s['count']:,}",
                      pct(s["conversion_from_previous"]), pct(s["conversion_from_first"]),
                      format_duration(s["avg_seconds_from_previous"]), format_duration(s["median_seconds_from_previous"]))
    return table


def funnel(result: dict, params, view) -> None:
    out = _out()
    out.print(_steps_table("funnel", result["steps"]))
    for g in result.get("groups", []):
        out.print(_steps_table(f"{result['breakdown']} = {g['value']}", g["steps"]))


def retention(result: dict, params, view) -> None:
    width = max((len(c["values"]) for c in result["cohorts"]), default=0)
    heads = [f"{lo_hi}d" for lo_hi in result["brackets"]] or [f"{'R' if params.rolling else 'P'}{k}" for k in range(width)]
    rows = [(c["start"], str(c["size"]), [f"{v} ({pct(r)})" for v, r in zip(c["values"], c["rates"], strict=True)]
             + [""] * (width - len(c["values"]))) for c in result["cohorts"]]
    _period_table(_out(), ("cohort", "size"), heads, rows, f"Retention: {params.start} -> {params.return_event} "
                  f"({params.mode}, {params.period}, by {result['by']})", "periods")


def lifecycle(result: dict, params, view) -> None:
    table = Table("interval", "new", "returning", "resurrecting", "dormant", "active", "quick ratio",
                  title=f"Lifecycle (by {result['by']})")
    for r in result["intervals"]:
        qr = "-" if r["quick_ratio"] is None else f"{r['quick_ratio']:.2f}"
        table.add_row(r["start"], *(str(r[k]) for k in ("new", "returning", "resurrecting", "dormant", "active")), qr)
    _out().print(table)


def stickiness(result: dict, params, view) -> None:
    out = _out()
    width = max((len(r["distribution"]) for r in result["intervals"]), default=0)
    heads = [f"{k}d" for k in range(1, width + 1)]
    rows = [(r["start"], str(r["units"]), [str(v) for v in r["distribution"]] + [""] * (width - len(r["distribution"])))
            for r in result["intervals"]]
    _period_table(out, ("interval", "units"), heads, rows, f"Stickiness: units by active days (by {result['by']})",
                  "day counts")
    monthly = Table("month", "days", "avg DAU", "MAU", "DAU/MAU", title="DAU/MAU")
    for m in result["dau_mau"]:
        monthly.add_row(m["month"], str(m["days"]), f"{m['avg_dau']:.2f}", str(m["mau"]), pct(m["dau_mau"]))
    out.print(monthly)


# -- surveys, revenue, value --------------------------------------------------------------------------------


def _survey_cell(s: dict | None, kind: str) -> str:
    if not s:
        return "–"
    if kind == "csat":
        value = f"{100 * s['score']:.1f}%"
        ci = "" if s["ci_low"] is None else f" ({100 * s['ci_low']:.0f}–{100 * s['ci_high']:.0f})"
    else:
        value = f"{s['score']:.1f}" if kind == "nps" else f"{s['score']:.2f}"
        ci = "" if s["ci_low"] is None else f" ({s['ci_low']:.1f}–{s['ci_high']:.1f})"
    return f"{value}{ci} n={s['n']:,}"


def surveys(result: dict, params, view) -> None:
    table = Table(params.group, "NPS (95% CI)", "CSAT (95% CI)", "CES (95% CI)")
    for row in result["rows"]:
        table.add_row(str(row["value"]), *[_survey_cell(row.get(k), k) for k in ("nps", "csat", "ces")])
    _out().print(table)


def revenue(result: dict, params, view) -> None:
    out = _out()
    table = Table("month", "start", "+new", "+react.", "+exp.", "-contr.", "-churned", "end", "logo churn", "GRR", "NRR")
    for m in result["months"]:
        table.add_row(m["month"], *[_money(m[k]) for k in ("start", "new", "reactivation", "expansion", "contraction",
                                                           "churned", "end")],
                      pct(m["logo_churn"]), pct(m["grr"]), pct(m["nrr"]))
    out.print(table)
    for key in ("by_kind", "by_reason", "by_plan", "by_persona", "by_stage"):
        t = Table(key.removeprefix("by_"), "churns", "accounts", "MRR lost")
        for row in result["churn"][key]:
            t.add_row(str(row["value"] or "–"), f"{row['churns']:,}", f"{row['accounts']:,}", _money(row["mrr_lost"]))
        out.print(t)


def _months(x: float | None) -> str:
    return "unbounded" if x is None else f"{x:.1f}"


def clv(result: dict, params, view) -> None:
    out = _out()
    m = result["model"]
    out.print(f"{result['accounts']:,} paying accounts in {result['cohorts']} monthly cohorts; "
              f"sBG alpha {m['alpha']:.3g}, beta {m['beta']:.3g}; month-1 retention {pct(result['month_1_retention'])}; "
              f"expected lifetime {_months(result['expected_lifetime_months'])} months")
    out.print(f"CLV of a new account: {_money(result['clv'])} (first-month MRR {_money(result['first_month_mrr'])}, "
              f"margin {params.margin:.0%}, {params.discount:.0%} a year)")
    for key in ("persona", "channel"):
        t = Table(key, "accounts", "churned", "MRR", "month-1 ret.", "lifetime (months)", "CLV", "curve")
        for r in result["segments"][key]:
            t.add_row(str(r["value"]), f"{r['accounts']:,}", f"{r['churned']:,}", _money(r["first_month_mrr"]),
                      pct(r["month_1_retention"]), _months(r["expected_lifetime_months"]), _money(r["clv"]),
                      r["retention_curve"])
        out.print(t)
    if "cac" in result:
        t = Table("channel", "spend", "new accounts", "CAC", "CLV", "LTV:CAC")
        for r in result["cac"]:
            t.add_row(r["channel"], _money(r["spend"]), f"{r['new_accounts']:,}", _money(r["cac"]), _money(r["clv"]),
                      "–" if r["ltv_cac"] is None else f"{r['ltv_cac']:.1f}")
        out.print(t)
    for note in result["notes"]:
        out.print(f"[dim]{note}[/dim]")


# -- risk and health ----------------------------------------------------------------------------------------


def print_evaluation(out: Console, ev: dict) -> None:
    t = Table("held-out", "ROC-AUC", "PR-AUC", "Brier", "rows", "churned", title=(
        f"{ev['horizon_days']}-day churn, held out {', '.join(ev['split']['test'])} "
        f"(trained to {ev['split']['train'][-1]}, "
        + ("uncalibrated: no calibration date had both churned and retained accounts)" if ev["calibration"] == "none"
           else f"calibrated {ev['calibration']})")))
    for name in ("model", "logistic", "recency_only"):
        e = ev[name]
        label = ev["estimator"] if name == "model" else name
        t.add_row(label, _num(e["roc_auc"], ".3f"), _num(e["pr_auc"], ".3f"), _num(e["brier"], ".4f"), f"{e['rows']:,}",
                  f"{e['churned']:,}")
    out.print(t)
    c = Table("decile", "predicted", "observed", "count", title="calibration (held-out)")
    for row in ev["model"]["calibration"]:
        c.add_row(str(row["decile"]), pct(row["predicted"]), pct(row["observed"]), str(row["count"]))
    out.print(c)


def risk(result: dict, params, view) -> None:
    out = _out()
    t = Table("account", "risk", "MRR", "stage", "reasons",
              title=f"{result['paying_accounts']:,} paying accounts at {result['at'][:10]}, "
                    f"mean {result['horizon_days']}-day churn risk {pct(result['mean_risk'])}")
    for a in result["accounts"]:
        t.add_row(a["unit_id"], pct(a["risk"]), "–" if a["mrr"] is None else f"{a['mrr']:,.0f}", str(a["stage"] or "–"),
                  "\n".join(f"{r['text']} (+{100 * r['risk_drop']:.1f} pts)" for r in a["reasons"]) or "–")
    out.print(t)
    print_evaluation(out, result["evaluation"])
    for note in result.get("notes", []):
        out.print(f"[dim]{escape(note)}[/]", highlight=False, soft_wrap=True)


def health(result: dict, params, view) -> None:
    out = _out()
    w = Table("component", "feature", "direction", "weight", title=f"weights ({result['weights']['source']})")
    for c in result["weights"]["components"]:
        w.add_row(c["name"], c["feature"], c["direction"].replace("_", " "), pct(c["weight"]))
    out.print(w)
    bt, days = result["backtest"], result["horizon_days"]
    b = Table("band", "score", "accounts now", "backtest rows", f"churned in {days}d", title=(
        f"backtest on {', '.join(bt['dates'])}: ROC-AUC of (100 - health) {_num(bt['roc_auc'], '.3f')}, "
        f"base rate {pct(bt['base_rate'])}"))
    now = {x["band"]: x["accounts"] for x in result["bands"]}
    for row in bt["bands"]:
        b.add_row(row["band"], f"{row['from']:.0f}-{row['to']:.0f}", f"{now[row['band']]:,}", f"{row['rows']:,}",
                  pct(row["churn_rate"]))
    out.print(b)
    t = Table("account", "health", "band", "band churn", "MRR", "expansion", title=f"accounts at {result['at'][:10]}")
    for a in _rows(result["accounts"], view):
        t.add_row(a["unit_id"], f"{a['health']:.0f}", a["band"], pct(a["band_churn_rate"]),
                  "–" if a["mrr"] is None else f"{a['mrr']:,.0f}", ", ".join(a["expansion"]) or "–")
    out.print(t)
    e = result["expansion"]
    out.print(f"expansion signals: {e['high_utilisation']:,} accounts at >= {e['utilisation_threshold']:.0%} seat "
              f"utilisation, {e['growing_usage']:,} with usage growing >= {e['trend_threshold']}x")
    for note in result.get("notes", []):
        out.print(f"[dim]{escape(note)}[/]", highlight=False, soft_wrap=True)


# -- moments, voice, friction -------------------------------------------------------------------------------


def moments(result: dict, params, view) -> None:
    out = _out()
    u = result["units"]
    title = (f"Moments of truth: done within {result['within_days']:g} days of the start, retained at "
             f"{result['horizon_days']:g} days ({result['population']}, by {result['level']})")
    t = Table("#", "behaviour", "reach", "ret. with", "ret. without", "lift", "95% CI", "diff.", "q", "impact",
              "persona check", title=title)
    ranked = [m for m in result["moments"] if m["ranked"]]
    for m in _rows(ranked, view):
        t.add_row(str(m["rank"]), m["behaviour"], pct(m["reach"]), pct(m["retention_with"]), pct(m["retention_without"]),
                  _num(m["lift"], ".3f"), _ci(*m["lift_ci"], digits=3), _num(m["difference"], "+.3f"),
                  _num(m["q_value"], ".3g"), _num(m["impact"], ".1f"), "; ".join(m["flags"]) or "ok")
    out.print(t)
    out.print(f"{u['analysed']:,} units analysed, {pct(u['retention'])} retained; {u['censored']:,} left out as "
              f"right-censored (started less than {result['horizon_days']:g} days before the data ends), "
              f"{u['not_customers']:,} never customers, {u['left_before_window_end']:,} churned inside the window; "
              f"{len(ranked):,} behaviours ranked, {len(result['excluded']):,} left out as outcome-defining "
              "(see --json `excluded`).", highlight=False)
    warnings = sorted((m for m in ranked if (m["difference"] or 0) < 0 and (m["q_value"] or 1) < 0.05),
                      key=lambda m: m["impact"] or 0)
    if warnings:
        out.print("Warning signs (significantly lower retention): " + ", ".join(
            f"{m['behaviour']} (lift {m['lift']:.2f})" for m in warnings[:5]), highlight=False)
    a = result["activation"]
    if a and a["definition"]:
        w = next(x for x in a["windows"] if x["within_days"] == a["within_days"])
        out.print(f"[bold]Suggested activation:[/] {a['definition']} (reach {pct(w['reach'])}, lift "
                  f"{_num(w['lift'], '.3f')}, Youden's J {_num(w['youden_j'], '.3f')}).", highlight=False)
    elif a and a.get("undecided"):
        out.print(f"[bold]No activation named:[/] {a['undecided']}.", highlight=False)
    else:
        out.print("No activation suggestion: no behaviour has a significant positive difference.")
    out.print(f"[italic]{result['caveat']}[/]", highlight=False)


def voice(result: dict, params, view) -> None:
    out = _out()
    s, group = result["sentiment"], view.group
    signed = lambda x: _num(x, "+.2f")  # noqa: E731
    out.print(f"{result['n_texts']:,} texts from {result.get('units', 0):,} units; mean compound "
              f"{signed(s['mean_compound'])}, {pct(s['pct_negative'])} negative, {pct(s['pct_positive'])} positive")
    t = Table("theme", "share", "texts", "mean compound", "negative", "quote")
    for th in result["themes"]:
        t.add_row(th["label"], pct(th["share"]), f"{th['n']:,}", signed(th["mean_compound"]), pct(th["pct_negative"]),
                  th["quotes"][0] if th["quotes"] else "")
    out.print(t)
    t = Table(group, "texts", "mean compound", "negative", "top themes (share, compound)", "quote")
    for row in result["groups"][group]:
        top = "; ".join(f"{x['theme']} {pct(x['share'])} {signed(x['mean_compound'])}" for x in row["themes"][:3])
        quote = row["themes"][0]["quotes"][0] if row["themes"] and row["themes"][0]["quotes"] else ""
        t.add_row(str(row["value"]), f"{row['n']:,}", signed(row["mean_compound"]), pct(row["pct_negative"]), top, quote)
    out.print(t)


def friction(result: dict, params, view) -> None:
    out = _out()
    for key in ("friction", "delight"):
        t = Table("#", key, "stage", "touchpoint", "units", "MRR at stake", "evidence", title=key.capitalize())
        for i, item in enumerate(_rows(result[key], view), start=1):
            t.add_row(str(i), item["title"], item["stage"] or "–", item["touchpoint"] or "–", f"{item['units']:,}",
                      _money(item["mrr_at_stake"]), item["evidence"]["sentence"])
        out.print(t)


def conformance(result: dict, params, view) -> None:
    out = _out()
    out.print(f"Conformance: {result['conforming']:,} of {result['units']:,} units fit the design "
              f"({pct(result['rate'])}, 95% CI {_ci(result['ci_low'], result['ci_high'])}); "
              f"{result['finished']:,} have ended; data to {str(result['as_of'])[:10]}")
    t = Table("persona", "design", "units", "conforming", "rate", "95% CI", title="Per persona")
    for r in result["personas"]:
        t.add_row(r["persona"], r["design"], f"{r['units']:,}", f"{r['conforming']:,}", pct(r["rate"]),
                  _ci(r["ci_low"], r["ci_high"]))
    out.print(t)
    t = Table("deviation", "deviations", "units", "share", "allowed", "top steps", "conversion with / without",
              "churn with / without", title="Deviations")
    for d in result["deviations"]:
        imp = result["impact"].get(d["type"], {})

        def both(key, imp=imp):
            c = imp.get(key)
            return "–" if not c else f"{pct(c['with']['rate'])} / {pct(c['without']['rate'])}"

        t.add_row(d["type"], f"{d['deviations']:,}", f"{d['units']:,}", pct(d["share"]), f"{d['allowed']:,}",
                  ", ".join(f"{s['step']} ({s['deviations']:,})" for s in d["by_step"][:3]), both("conversion"),
                  both("churn"))
    out.print(t)
    t = Table("design", "variant", "units", "share", "leaves the design at", title="Most common non-conforming variants")
    for v in _rows(result["variants"], view):
        at = v["leaves_at"]
        t.add_row(v["design"], " → ".join(v["path"]), f"{v['units']:,}", pct(v["share"]),
                  f"{at['step']} ({at['deviation']})")
    out.print(t)


def _g(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}g}"


def experiment(result: dict, params, view) -> None:
    out = _out()
    e, srm = result["experiment"], result["srm"]
    table = Table("variant", "units", "share", "expected")
    for v in result["variants"]:
        table.add_row(v["variant"] + (" (control)" if v["variant"] == e["control"] else ""), f"{v['units']:,}",
                      pct(v["share"]), pct(v["expected_share"]))
    out.print(table)
    flag = "MISMATCH" if srm["mismatch"] else "ok"
    out.print(f"sample ratio: chi2 {_g(srm['chi2'])}, p = {_g(srm['pvalue'])} ({flag}, threshold {srm['threshold']:g}); "
              f"excluded: {result['excluded']['multiple_variants']:,} exposed to more than one variant")
    for m in result["metrics"]:
        t = Table("variant", "units", "mean (95% CI)", "difference (95% CI)", "lift (95% CI)", "p",
                  title=f"{m['role']}: {m['id']} ({m['kind']}, {m['window']})" + (f": {m['label']}" if m["label"] else ""))
        diffs = {c["variant"]: c for c in m["comparisons"]}
        for v in m["variants"]:
            c = diffs.get(v["variant"])
            t.add_row(v["variant"], f"{v['units']:,}", f"{_g(v['mean'])} ({_ci(*v['ci'], digits=3)})",
                      f"{_g(c['difference'])} ({_ci(*c['difference_ci'], digits=3)})" if c else "control",
                      f"{pct(c['lift'])} ({pct(c['lift_ci'][0])} to {pct(c['lift_ci'][1])})" if c else "",
                      _g(c["pvalue"]) if c else "")
        out.print(t)
        cuped = m["cuped"]
        out.print(f"  CUPED: {'applied' if cuped['applied'] else 'not applied'}: {cuped['reason']}"
                  + (f" (variance -{pct(cuped['variance_reduction'])})" if cuped.get("variance_reduction") else ""))
        if m.get("breached"):
            out.print(f"  guardrail breached by {', '.join(m['breached'])}")


RENDERERS = {
    "map": None, "transitions": transitions, "paths": paths, "variants": variants, "funnel": funnel,
    "retention": retention, "lifecycle": lifecycle, "stickiness": stickiness, "surveys": surveys, "revenue": revenue,
    "moments": moments, "risk": risk, "health": health, "clv": clv, "voice": voice, "friction": friction,
    "conformance": conformance,
    "experiment": experiment,
}
SPECIAL = {"map": {"extra": [OUT_OPTION], "after": _map_output}}
