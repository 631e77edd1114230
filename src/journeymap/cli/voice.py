"""`journeymap voice`: sentiment and themes of customer text per stage, touchpoint, persona or period;
`journeymap interviews DIR`: load interview transcripts; `journeymap friction`: pain and delight by impact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from journeymap.cli.common import JsonOpt, WorkspaceOpt, fail, pct, print_json, workspace_for


def _num(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:+.{digits}f}"


def _money(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def register(app: typer.Typer) -> None:
    @app.command()
    def voice(
        workspace: WorkspaceOpt = Path("."),
        by: Annotated[str, typer.Option(help="Group the table by stage, touchpoint, persona, period or kind.")] = "stage",
        themes: Annotated[int | None, typer.Option("--themes", help="Number of themes (default: chosen by coherence).")] = None,
        themes_method: Annotated[str, typer.Option("--themes-method", help="tfidf (TF-IDF + NMF, default) or embeddings "
                                                   "(sentence embeddings; needs `pip install 'journeymap[embeddings]'`).")] = "tfidf",
        seed: Annotated[int, typer.Option(help="Seed of the theme model: same texts + seed, same themes.")] = 0,
        level: Annotated[str | None, typer.Option("--level", help="person or account (default: the definition's).")] = None,
        as_json: JsonOpt = False,
    ):
        """Sentiment (VADER) and themes of survey comments, tickets, reviews and interviews, tied to the
        journey: per stage, touchpoint, persona, period (month) or kind, with representative quotes.
        JSON has every grouping."""
        from journeymap.insights.voice.texts import GROUPS

        if by not in GROUPS:
            fail(f"--by must be one of {', '.join(GROUPS)}")
        if level not in (None, "person", "account"):
            fail("--level must be person or account")
        with workspace_for(workspace) as ws:
            if themes_method not in ("tfidf", "embeddings"):
                fail(f"--themes-method must be tfidf or embeddings, not {themes_method!r}")
            try:
                result = ws.voice(level=level, n_themes=themes, seed=seed, method=themes_method)
            except ImportError as exc:
                fail(str(exc))
        if as_json:
            print_json(result)
            return
        out = Console()
        s = result["sentiment"]
        out.print(f"{result['n_texts']:,} texts from {result.get('units', 0):,} units; mean compound "
                  f"{_num(s['mean_compound'])}, {pct(s['pct_negative'])} negative, {pct(s['pct_positive'])} positive")
        t = Table("theme", "share", "texts", "mean compound", "negative", "quote")
        for th in result["themes"]:
            t.add_row(th["label"], pct(th["share"]), f"{th['n']:,}", _num(th["mean_compound"]), pct(th["pct_negative"]),
                      th["quotes"][0] if th["quotes"] else "")
        out.print(t)
        t = Table(by, "texts", "mean compound", "negative", "top themes (share, compound)", "quote")
        for row in result["groups"][by]:
            top = "; ".join(f"{x['theme']} {pct(x['share'])} {_num(x['mean_compound'])}" for x in row["themes"][:3])
            quote = row["themes"][0]["quotes"][0] if row["themes"] and row["themes"][0]["quotes"] else ""
            t.add_row(str(row["value"]), f"{row['n']:,}", _num(row["mean_compound"]), pct(row["pct_negative"]), top, quote)
        out.print(t)

    @app.command()
    def interviews(
        directory: Annotated[Path, typer.Argument(help="A folder of .txt transcripts, one per interview.")],
        workspace: WorkspaceOpt = Path("."),
        as_json: JsonOpt = False,
    ):
        """Add interview transcripts: each .txt file starts with `email: ...` and `date: YYYY-MM-DD` lines,
        a blank line, then the text. They are ingested as `interview_transcript` events (adding again adds nothing)."""
        with workspace_for(workspace) as ws:
            result = ws.add_interviews(directory)
        if as_json:
            print_json(result)
            return
        Console().print(f"{result['transcripts']:,} transcripts: {result['accepted']:,} accepted, "
                        f"{result['duplicate']:,} duplicate, {result['rejected']:,} rejected ({result['file']})")

    @app.command()
    def friction(
        workspace: WorkspaceOpt = Path("."),
        top: Annotated[int, typer.Option(help="Items of each list to show in the table (JSON has all).")] = 10,
        level: Annotated[str | None, typer.Option("--level", help="person or account (default: the definition's).")] = None,
        as_json: JsonOpt = False,
    ):
        """Friction and delight ranked by impact: where on the map, units touched, MRR at stake, evidence."""
        if level not in (None, "person", "account"):
            fail("--level must be person or account")
        with workspace_for(workspace) as ws:
            result = ws.friction(level=level)
        if as_json:
            print_json(result)
            return
        out = Console()
        for key in ("friction", "delight"):
            t = Table("#", key, "stage", "touchpoint", "units", "MRR at stake", "evidence", title=key.capitalize())
            for i, item in enumerate(result[key][:top], start=1):
                t.add_row(str(i), item["title"], item["stage"] or "–", item["touchpoint"] or "–", f"{item['units']:,}",
                          _money(item["mrr_at_stake"]), item["evidence"]["sentence"])
            out.print(t)
