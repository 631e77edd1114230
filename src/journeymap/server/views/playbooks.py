"""Playbooks: the list (definition, volume, measured effect) and one playbook (its definition, effect against
the holdout, recent firings), read from what the last refresh stored (act.summary, act.effect);
docs/playbooks.md, "Measured effect"."""

from __future__ import annotations

from fastapi import HTTPException

from journeymap.act import summary
from journeymap.errors import OptionError
from journeymap.server.views.base import Ctx, Page


def list_data(ctx: Ctx) -> dict:
    return summary.playbook_list(ctx.ws.con, ctx.ws.definition)


def detail_data(ctx: Ctx, playbook_id: str) -> dict:
    try:
        return summary.playbook_detail(ctx.ws.con, ctx.ws.definition, playbook_id)
    except OptionError as exc:  # an unknown id: not found, with the nearest id
        raise HTTPException(404, str(exc).removeprefix("--playbook: ")) from None


LIST = Page("playbooks", "/playbooks", "playbooks.html", list_data, lambda d: "Playbooks", needs_events=False)
DETAIL = Page("playbook", "/playbooks/{playbook_id}", "playbook.html", detail_data,
              lambda d: f"Playbook: {d['name']}", needs_events=False)
PAGES = (LIST, DETAIL)
