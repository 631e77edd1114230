"""Pain points and opportunities for the map: the largest drop-offs, the slowest stages, the worst-rated touchpoints.

Ranked by the units they touch. The insights issue deepens this (revenue at stake, sentiment clusters);
here each item says where it sits, how many units it touches, and the evidence.
"""

from __future__ import annotations

from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.durations import format_duration

LOW_CSAT, LOW_NPS, HIGH_CES = 0.80, 0.0, 4.0


def pain_points(view: dict, definition: JourneyDefinition, limit: int = 8) -> list[dict]:
    items: list[dict] = []
    progression = definition.progression
    for s in progression[:-1]:
        st = view["stages"][s.id]
        if st["reached"] and st["dropped"]:
            items.append({
                "kind": "drop_off", "stage": s.id, "units": st["dropped"], "severity": st["dropped"] / st["reached"],
                "title": f"{100 * st['dropped'] / st['reached']:.0f}% drop in {s.name}",
                "detail": f"{st['dropped']:,} of {st['reached']:,} units never moved on from {s.name}",
            })
    p50s = [view["stages"][s.id]["time_in_stage"]["p50_seconds"] for s in progression]
    known = sorted(x for x in p50s if x is not None)
    typical = known[len(known) // 2] if known else None
    for s in progression:
        tis = view["stages"][s.id]["time_in_stage"]
        if typical and tis["p50_seconds"] and tis["p50_seconds"] > 2 * typical:
            items.append({
                "kind": "slow_stage", "stage": s.id, "units": view["stages"][s.id]["reached"],
                "severity": min(1.0, tis["p50_seconds"] / (10 * typical)),
                "title": f"{s.name} is slow: median {format_duration(tis['p50_seconds'])}",
                "detail": f"median time in stage is {tis['p50_seconds'] / typical:.1f}x the typical stage "
                          f"({format_duration(typical)}); p90 {format_duration(tis['p90_seconds'])}",
            })
    tp_meta = {t.id: t for t in definition.touchpoints}
    for tp, scores in view.get("touchpoint_surveys", {}).items():
        t = tp_meta.get(tp)
        for kind, bad in (("csat", lambda x: x < LOW_CSAT), ("nps", lambda x: x < LOW_NPS), ("ces", lambda x: x > HIGH_CES)):
            s = scores.get(kind)
            if s and s["score"] is not None and s["n"] >= 20 and bad(s["score"]):
                shown = f"{100 * s['score']:.0f}%" if kind == "csat" else f"{s['score']:.1f}"
                items.append({
                    "kind": "low_rated_touchpoint", "stage": t.stage if t else None, "units": s["n"],
                    "severity": 0.5, "title": f"{t.name if t else tp}: {kind.upper()} {shown}",
                    "detail": f"{s['n']:,} answers; {kind.upper()} {shown}",
                })
    items.sort(key=lambda i: (-i["units"], -i["severity"]))
    return items[:limit]


def opportunities(view: dict, definition: JourneyDefinition, pains: list[dict]) -> list[dict]:
    out = [{"stage": s.id, "title": o, "source": "team"} for s in definition.stages for o in s.opportunities]
    names = {s.id: s.name for s in definition.stages}
    for p in pains[:3]:
        if p["kind"] == "drop_off":
            title = f"Win back the {p['units']:,} units who stall in {names[p['stage']]}"
        elif p["kind"] == "slow_stage":
            title = f"Shorten {names[p['stage']]}: it is the slowest stage"
        else:
            title = f"Fix the experience behind '{p['title']}'"
        out.append({"stage": p["stage"], "title": title, "source": "data"})
    return out
