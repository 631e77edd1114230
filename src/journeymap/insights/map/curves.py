"""The current-vs-future curves of a map view (docs/map-json.md, "The curves"): per journey stage, the emotion
customers report against the emotion the stage's survey targets ask for, and the median time in the stage
against the time the design gives it.

Both curves read numbers the map already has (the stage's `emotion` and Kaplan-Meier `time_in_stage`, the
view's `future_state` steps) and the definition's targets; nothing here queries the engine. A stage without a
target says what to add instead of drawing nothing.
"""

from __future__ import annotations

from journeymap.insights.map.emotion_scale import survey_emotion
from journeymap.insights.map.targets import label
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.targets import Target

SURVEY_METRICS = ("nps", "csat", "ces")
EMOTION_EXAMPLE = "{metric: csat, stage: %s, op: '>=', value: 87%%}"
TIME_EXAMPLE = "{metric: time_in_stage_p50, stage: %s, op: '<=', value: 7d}"


def _survey_targets(definition: JourneyDefinition, stage: str, persona: str) -> dict[str, Target]:
    """Per survey kind, the absolute target of this stage that holds for the view: a persona's own target
    replaces the general one; relative targets (`change:`) have no level to draw and are left out."""
    out: dict[str, Target] = {}
    for t in definition.targets:
        if t.metric not in SURVEY_METRICS or t.stage != stage or t.value is None:
            continue
        if t.persona is None and t.metric not in out:
            out[t.metric] = t
        elif t.persona == persona:
            out[t.metric] = t
    return out


def target_emotion(targets: dict[str, Target], surveys: dict[str, dict]) -> float | None:
    """The survey targets on the emotion scale (`survey_emotion`, the mapping of the stage's own emotion),
    weighted as the actual emotion weights its survey kinds: by the stage's answers of each kind; equally when
    the stage has no answers of the targeted kinds. None without a target.

    A CSAT target is a percentage (`numeric_value`: 87 for 87%), the survey's score a share (0.87).
    """
    if not targets:
        return None
    parts = []
    for kind, t in targets.items():
        score = t.numeric_value() / 100.0 if kind == "csat" else t.numeric_value()
        parts.append((survey_emotion(kind, score), (surveys.get(kind) or {}).get("n") or 0))
    total = sum(n for _, n in parts)
    if total == 0:
        return sum(v for v, _ in parts) / len(parts)
    return sum(v * n for v, n in parts) / total


def _time_target(definition: JourneyDefinition, stage: str, persona: str, fs: dict) -> tuple[float | None, str | None,
                                                                                               list[str]]:
    """(seconds, where from, steps): the stage's `time_in_stage_p50` target (the same measure as the actual
    curve), else the sum of the budgets (`within`) of the design's steps placed in the stage, else the design's
    end-to-end budget on the stage of its last item."""
    for t in definition.targets:
        if t.metric == "time_in_stage_p50" and t.stage == stage and t.value is not None and t.persona in (None, persona):
            return t.numeric_value(), "time_in_stage_p50", []
    steps = [s for s in fs.get("steps") or [] if s.get("stage") == stage and s.get("budget_seconds") is not None]
    if steps:
        return sum(s["budget_seconds"] for s in steps), "steps", [s["id"] for s in steps]
    last = max((s["position"] for s in fs.get("steps") or []), default=None)
    if fs.get("within_seconds") is not None and any(s["position"] == last and s.get("stage") == stage
                                                    for s in fs.get("steps") or []):
        return fs["within_seconds"], "end_to_end", []
    return None, None, []


def curves(view: dict, definition: JourneyDefinition, persona: str) -> dict:
    """The two curves of a view, per non-terminal stage in journey order: `emotion` (actual, target) and
    `time` (actual_seconds, target_seconds), each point with where its target comes from and a note saying
    what to add when there is none; `notes` says it once per curve when no stage has a target."""
    emotion, time = [], []
    fs = view.get("future_state") or {}
    for s in definition.progression:
        stage = view["stages"].get(s.id) or {}
        targets = _survey_targets(definition, s.id, persona)
        goal = target_emotion(targets, stage.get("surveys") or {})
        emotion.append({
            "stage": s.id, "actual": stage.get("emotion"), "target": goal,
            "target_from": [label(t) for t in targets.values()],  # as the targets panel names them
            "note": None if goal is not None else "no target: add " + EMOTION_EXAMPLE % s.id + " under targets:",
        })
        seconds, source, steps = _time_target(definition, s.id, persona, fs)
        time.append({
            "stage": s.id, "actual_seconds": (stage.get("time_in_stage") or {}).get("p50_seconds"),
            "target_seconds": seconds, "target_from": source, "steps": steps,
            "note": None if seconds is not None else (f"no time budget: add within: to a future_state step in {s.id}, "
                                                      "or " + TIME_EXAMPLE % s.id + " under targets:"),
        })
    notes = {
        "emotion": None if any(p["target"] is not None for p in emotion) else (
            "no stage has an NPS, CSAT or CES target, so there is no target emotion to draw: add one per stage "
            "under targets:, e.g. " + EMOTION_EXAMPLE % (definition.progression[0].id if definition.progression
                                                         else "STAGE")),
        "time": None if any(p["target_seconds"] is not None for p in time) else (
            "no stage has a time budget: add within: to the design's steps, or a time_in_stage_p50 target per stage"),
    }
    return {"emotion": emotion, "time": time, "notes": notes}
