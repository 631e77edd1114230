"""What the playbooks' pages show (`/app/playbooks`, `/app/playbooks/{id}`, their JSON twins, `journeymap act
playbooks` and `act show`): each playbook's definition, volume and measured effect as the last evaluation stored
them (act.effect), and its recent firings. Reads only: nothing is computed here that the refresh did not store."""

from __future__ import annotations

from journeymap.act import effect
from journeymap.act.explain import find_playbook
from journeymap.act.triggers import q
from journeymap.ingest.store import has_table
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.playbooks import Playbook

RECENT = 25


def _stages(playbook: Playbook) -> list[str]:
    """The stages a playbook sits on: its entry's, its goal's and its owner's (the map's actions lane)."""
    e = playbook.entry
    found = [e.stage_entered, e.stalled.stage if e.stalled else None, playbook.goal.stage if playbook.goal else None,
             playbook.owner.stage if playbook.owner.stage != "current" else None]
    return list(dict.fromkeys(s for s in found if s))


def _row(definition: JourneyDefinition, playbook: Playbook, measured: dict | None) -> dict:
    m = measured or {}
    return {"id": playbook.id, "name": playbook.name, "description": playbook.description,
            "level": definition.playbook_level(playbook), "entry_kind": playbook.entry.kind,
            "owner": playbook.owner.model_dump(exclude_none=True), "stages": _stages(playbook),
            "holdout": playbook.holdout, "window": playbook.goal.within if playbook.goal else None,
            "actions": [a.kind for a in playbook.actions], "volume": m.get("volume"), "measured": m.get("measured"),
            "goal": m.get("goal"), "churn": m.get("churn"), "mrr": m.get("mrr"), "note": m.get("note") if measured
            else "not evaluated yet: run `journeymap refresh`",
            "data_through": m.get("data_through"), "computed_at": m.get("computed_at")}


def playbook_list(con, definition: JourneyDefinition) -> dict:
    effects = effect.stored(con)
    return {"playbooks": [_row(definition, p, effects.get(p.id)) for p in definition.playbooks],
            "min_group": effect.MIN_GROUP, "detect": effect.DETECT}


def playbook_detail(con, definition: JourneyDefinition, playbook_id: str, recent: int = RECENT) -> dict:
    """One playbook: its definition as journeymap.yml has it, volume, effect and the latest entries."""
    playbook = find_playbook(definition, playbook_id)
    out = _row(definition, playbook, effect.stored(con, playbook.id).get(playbook.id))
    out["definition"] = playbook.model_dump(mode="json", exclude_none=True, by_alias=True)
    out["recent"] = []
    if has_table(con, "act_entries"):
        cur = con.execute(f"SELECT unit_id, entry, entered_at, holdout, live, sent, owner, exited_at, exit_reason "
                          f"FROM act_entries WHERE playbook = {q(playbook.id)} ORDER BY entered_at DESC, unit_id "
                          f"LIMIT {int(recent)}")
        names = [d[0] for d in cur.description]
        out["recent"] = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return {**out, "min_group": effect.MIN_GROUP, "detect": effect.DETECT}


def by_stage(con, definition: JourneyDefinition) -> dict[str, list[dict]]:
    """The map's actions lane: per stage id, the playbooks on it with owner, volume and effect (compact)."""
    out: dict[str, list[dict]] = {}
    for row in playbook_list(con, definition)["playbooks"]:
        goal = row["goal"] or {}
        item = {"id": row["id"], "name": row["name"], "owner": row["owner"].get("fallback") if not
                (row["owner"].get("trait") or row["owner"].get("stage")) else _owner_text(definition, row["owner"]),
                "entries_30d": (row["volume"] or {}).get(f"last_{effect.VOLUME_DAYS}_days"),
                "entries": (row["volume"] or {}).get("entries"),
                "effect": {k: goal.get(k) for k in ("difference", "ci_low", "ci_high", "too_small", "verdict", "text")}
                if goal else None, "note": row["note"]}
        for stage in row["stages"]:
            out.setdefault(stage, []).append(item)
    return out


def _owner_text(definition: JourneyDefinition, owner: dict) -> str:
    if owner.get("stage"):
        stage = next((s for s in definition.stages if s.id == owner["stage"]), None)
        return (stage.owner if stage and stage.owner else None) or owner["fallback"]
    return f"the {owner['trait']} trait (else {owner['fallback']})"
