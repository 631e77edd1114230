"""The map's emotion scale, -1..1: survey scores put on it one way, for a stage's emotion and for its targets."""

from __future__ import annotations


def survey_emotion(kind: str, score: float) -> float:
    """One survey score on the emotion scale -1..1: NPS/100, a CSAT share (0..1) as 2*s-1, a CES mean (1-7,
    lower is easier) as (4-CES)/3. The map's current-vs-future curves map survey targets with it too.

    >>> survey_emotion("nps", 40), survey_emotion("csat", 0.75), survey_emotion("ces", 2.5)
    (0.4, 0.5, 0.5)
    """
    value = {"nps": score / 100.0, "csat": 2 * score - 1, "ces": (4 - score) / 3}[kind]
    return max(-1.0, min(1.0, value))


def emotion(surveys: dict[str, dict]) -> float | None:
    """-1..1: each survey kind's score on the emotion scale (`survey_emotion`), weighted by answers."""
    parts = []
    for kind, s in surveys.items():
        if s["score"] is None or not s["n"]:
            continue
        parts.append((survey_emotion(kind, s["score"]), s["n"]))
    if not parts:
        return None
    return sum(v * n for v, n in parts) / sum(n for _, n in parts)
