"""The outbox payload of each of a playbook's actions for one entry, as act.outbox's contract says."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

from journeymap.act.outbox import Action, Entry
from journeymap.journey.durations import parse_duration
from journeymap.journey.playbooks import EmailAction, Playbook, SlackAction, TaskAction, WebhookAction


class _Keep(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(template: str, values: dict) -> str:
    """`{playbook}`, `{unit}`, `{owner}`, `{entry}`, `{level}` filled in; any other {name} is kept as written."""
    try:
        return template.format_map(_Keep(values))
    except (ValueError, IndexError):  # a lone brace: the text as written
        return template


def body(playbook: Playbook, e: Entry) -> dict:
    return {"type": "journeymap.playbook.entered", "playbook": playbook.id, "unit": {"level": e.level, "id": e.unit_id},
            "entry": e.entry, "entered_at": e.entered_at.isoformat(), "owner": e.owner, "reason": e.reason}


def text(playbook: Playbook, e: Entry) -> str:
    values = e.reason.get("values", {})
    said = ", ".join(f"{k}: {v}" for k, v in values.items())
    return (f"{e.unit_id} entered {playbook.name} at {e.entered_at:%Y-%m-%d %H:%M} ({e.reason['rule']}: {said}); "
            f"owner {e.owner}.")


def actions_for(playbook: Playbook, e: Entry, now: dt.datetime,
                address: Callable[[str | None], str | None] = lambda owner: owner) -> list[Action]:
    """The actions of one entry. `address` turns the entry's owner into an email address (the definition's
    `owners:`); an owner without one is sent as is, and the sender refuses it, naming the owner."""
    values = {"playbook": playbook.name, "unit": e.unit_id, "owner": e.owner, "entry": e.entry, "level": e.level}
    out = []
    for a in playbook.actions:
        if isinstance(a, WebhookAction):
            payload = {"url": a.url, "secret_env": a.secret_env, "body": json.loads(json.dumps(body(playbook, e), default=str))}
        elif isinstance(a, SlackAction):
            payload = {"url": a.url, "text": _fill(a.text, values) + "\n" + text(playbook, e)}
        elif isinstance(a, EmailAction):
            to = (address(e.owner) or e.owner) if a.to == "owner" else a.to
            payload = {"to": [to], "subject": _fill(a.subject, values),
                       "text": text(playbook, e)}
        elif isinstance(a, TaskAction):
            due = None if a.due is None else (now + dt.timedelta(seconds=a.delay_seconds + parse_duration(a.due))).isoformat()
            payload = {"owner": e.owner, "title": _fill(a.title, values), "body": text(playbook, e), "due_at": due}
        else:  # pragma: no cover - the definition's union names every kind
            raise AssertionError(type(a))
        out.append(Action(a.kind, payload, a.delay_seconds))
    return out
