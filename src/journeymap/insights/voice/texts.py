"""Voice of the customer tied to the journey: every customer text with where it was said, its sentiment
and its theme, and tables per stage, touchpoint, persona and period.

Texts come from the definition's `voice:` sources, or by default from survey comments plus any event
with a text property (DEFAULT_TEXT_PROPERTIES). Only the text rows come back to Python, with the unit,
time, stage at that time, touchpoint, persona, month, kind and score. Definitions and a worked example:
docs/metrics/voice-of-customer.md ("Tied to the journey").
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeymap.errors import OptionError
from journeymap.engine.annotate import journey_tables
from journeymap.engine.backends import Engine
from journeymap.engine.rules import rule_expr
from journeymap.insights.voice.sentiment import label, score_texts
from journeymap.insights.voice.themes import find_themes
from journeymap.journey.definition import JourneyDefinition, VoiceSource
from journeymap.journey.rules import Rule

DEFAULT_TEXT_PROPERTIES = tuple(
    name for base in ("comment", "text", "body", "title", "subject", "description") for name in (base, base.capitalize())
)
"""Property names read as customer text when the definition has no `voice:` section (exports keep their
column names, so `Subject` and `Title` count too)."""

GROUPS = ("stage", "touchpoint", "persona", "period", "kind")
QUOTES = 3
QUOTE_MIN_CHARS, QUOTE_MAX_CHARS = 12, 200
COLUMNS = ("unit_id", "ts", "seq", "event", "stage", "touchpoint", "persona", "kind", "text", "score")


def voice_sources(definition: JourneyDefinition) -> list[VoiceSource]:
    """The configured sources, or the default: each survey's comment, then every default text property."""
    if definition.voice is not None:
        return list(definition.voice)
    out = [VoiceSource(match=s.match, text=s.comment, kind="survey", score=s.score) for s in definition.surveys if s.comment]
    out += [VoiceSource(match=Rule(where={p: {"exists": True}}), text=p) for p in DEFAULT_TEXT_PROPERTIES]
    return out


def _inferred_kind(t) -> ibis.Value:
    """interview_transcript -> interview; source survey -> survey; support -> ticket; a review event -> review."""
    return ibis.cases(
        (t.event == "interview_transcript", "interview"),
        (t.source == "survey", "survey"),
        (t.source == "support", "ticket"),
        (t.event.lower().contains("review"), "review"),
        else_="other",
    )


def text_rows(engine: Engine, definition: JourneyDefinition, level: str | None = None, ac=None) -> pa.Table:
    """One row per customer text: unit_id, ts, seq, event, stage, touchpoint, persona, kind, text, score, period.

    `stage` is the stage the unit was in just before the text (as for survey answers), or the stage the
    text's own event opened when the unit was in none before. `ac` (annotated events with current_stage
    and stage_before) may be passed in by a caller that already has it. The same text from the same unit
    on two different event names counts once (a ticket's subject on both ticket_created and ticket_solved).
    """
    level = level or definition.analysis.level
    sources = voice_sources(definition)
    with engine.scope():
        if ac is None:
            ac = journey_tables(engine, definition, level)[2]
        # Windows over all events run once: keep only the events any source matches, then fan out.
        hits = engine.materialize(ac.filter(ibis.or_(*[rule_expr(engine, ac, s.match) for s in sources])))
        parts = []
        for i, src in enumerate(sources):
            t = hits.filter(rule_expr(engine, hits, src.match))
            t = t.mutate(_text=engine.json_get(t.properties, src.text))
            t = t.filter(t._text.notnull() & (t._text.strip() != ""))
            parts.append(t.select(
                "unit_id", "ts", "seq", "event",
                stage=ibis.coalesce(t.stage_before, t.current_stage), touchpoint=t.touchpoint, persona=t.persona,
                kind=ibis.literal(src.kind) if src.kind else _inferred_kind(t), text=t._text,
                score=engine.json_get(t.properties, src.score).try_cast("float64") if src.score else ibis.null("float64"),
                _src=ibis.literal(i),
            ))
        u = parts[0] if len(parts) == 1 else ibis.union(*parts, distinct=False)
        rows = engine.execute(u.order_by(["unit_id", "ts", "seq", "_src"]))
    return _dedupe(rows)


TEXT_SCHEMA = pa.schema([("unit_id", pa.string()), ("ts", pa.timestamp("us")), ("seq", pa.int64()), ("event", pa.string()),
                         ("stage", pa.string()), ("touchpoint", pa.string()), ("persona", pa.string()),
                         ("kind", pa.string()), ("text", pa.string()), ("score", pa.float64()), ("period", pa.string())])


def _dedupe(rows: pa.Table) -> pa.Table:
    """The texts kept, as Arrow columns: a Python pass over the five columns the rule reads decides which rows
    stay (not a dict per row: at 10M events, 150k texts, that took 0.8 s of the map)."""
    units, seqs, texts, kinds, events = (rows.column(c).to_pylist() for c in ("unit_id", "seq", "text", "kind", "event"))
    seen_event: set[tuple] = set()
    first_event: dict[tuple, str] = {}
    keep = []
    for unit, seq, text, kind, event in zip(units, seqs, texts, kinds, events, strict=True):
        # ordered by unit, ts, seq, source priority
        key = (unit, seq, text)
        if key in seen_event:  # one event matched by two sources (a survey comment is also a `comment`)
            keep.append(False)
            continue
        seen_event.add(key)
        keep.append(first_event.setdefault((unit, kind, text.strip()), event) == event)
    kept = rows.filter(pa.array(keep, type=pa.bool_()))
    period = pc.strftime(kept.column("ts"), format="%Y-%m") if kept.num_rows else pa.array([], pa.string())
    return pa.table([kept.column(f.name).cast(f.type) for f in TEXT_SCHEMA if f.name != "period"] + [period],
                    schema=TEXT_SCHEMA)


def scored(rows: pa.Table, n_themes: int | None = None, seed: int = 0, method: str = "tfidf") -> tuple[pa.Table, list[dict]]:
    """The rows plus compound, sentiment label, theme (label or null) and theme_weight; and the themes.
    `method`: tfidf (TF-IDF + NMF) or embeddings (the optional extra; docs/metrics/voice-of-customer.md)."""
    from journeymap.insights.voice.embedding_themes import themes_for  # imports torch only for method="embeddings"

    texts = rows.column("text").to_pylist()
    s = score_texts(texts)
    th = find_themes(texts, n_themes=n_themes, seed=seed) if method == "tfidf" else themes_for(
        texts, method=method, n_themes=n_themes, seed=seed)
    labels = [t.label for t in th.themes]
    theme = [labels[a] if a >= 0 else None for a in th.assignment]
    out = rows.append_column("compound", pa.array(s.compound, type=pa.float64(), from_pandas=True))
    out = out.append_column("sentiment", pa.array(s.labels(), type=pa.string()))
    out = out.append_column("theme", pa.array(theme, type=pa.string()))
    out = out.append_column("theme_weight", pa.array(th.weight, type=pa.float64()))
    themes = []
    for t in th.themes:
        idx = np.flatnonzero(th.assignment == t.index)
        themes.append({"label": t.label, "terms": [term for term, _ in t.terms[:6]], "n": t.n_docs,
                       "share": round(t.share, 4), **_sentiment_stats(s.compound[idx]),
                       "quotes": representative_quotes([texts[i] for i in idx], th.weight[idx])})
    return out, themes


def _sentiment_stats(compound: Sequence[float] | np.ndarray) -> dict:
    c = np.asarray(compound, dtype=float)
    c = c[~np.isnan(c)]
    if not len(c):
        return {"mean_compound": None, "pct_negative": None, "pct_positive": None}
    return {"mean_compound": round(float(c.mean()), 4),
            "pct_negative": round(float(np.mean([label(x) == "negative" for x in c])), 4),
            "pct_positive": round(float(np.mean([label(x) == "positive" for x in c])), 4)}


def _clean(text: str) -> bool:
    t = " ".join(text.split())
    return (QUOTE_MIN_CHARS <= len(t) <= QUOTE_MAX_CHARS and not re.search(r"https?://|\S+@\S+\.\w+", t)
            and sum(ch.isalpha() for ch in t) >= 0.6 * len(t))


def representative_quotes(texts: Sequence[str], weights: Iterable[float], n: int = QUOTES) -> list[str]:
    """The highest-weight texts of a theme, shortest first among equal weight (to 0.05), clean ones only
    (12-200 characters, no links or emails, mostly letters), deduplicated ignoring case and punctuation.

    >>> representative_quotes(["Slow dashboards every morning.", "slow dashboards every morning", "Slow!"], [0.9, 1.0, 1.0])
    ['slow dashboards every morning']
    """
    w = [float(x) for x in weights]
    order = sorted(range(len(texts)), key=lambda i: (-round(w[i] * 20), len(texts[i]), i))
    out, seen = [], set()
    for i in order:
        if not _clean(texts[i]):
            continue
        key = re.sub(r"\W+", " ", texts[i].lower()).strip()
        if key in seen:
            continue
        seen.add(key)
        out.append(" ".join(texts[i].split()))
        if len(out) == n:
            break
    return out


def group_table(rows: pa.Table, by: str, order: Sequence[str] = (), quotes: int = QUOTES) -> list[dict]:
    """Per value of `by`: n, mean compound, % negative / positive, mean score, and theme shares with
    each theme's mean compound and quotes. Rows with no value for `by` are left out."""
    cols = {c: rows.column(c).to_pylist() for c in (by, "compound", "theme", "theme_weight", "text", "score")}
    groups: dict[str, list[int]] = {}
    for i, v in enumerate(cols[by]):
        if v is not None:
            groups.setdefault(v, []).append(i)
    keys = [k for k in order if k in groups] + sorted(k for k in groups if k not in order)
    out = []
    for key in keys:
        idx = groups[key]
        compound = np.array([cols["compound"][i] for i in idx], dtype=float)
        scores = [cols["score"][i] for i in idx if cols["score"][i] is not None]
        by_theme: dict[str, list[int]] = {}
        for i in idx:
            if cols["theme"][i] is not None:
                by_theme.setdefault(cols["theme"][i], []).append(i)
        themes = []
        for theme, members in sorted(by_theme.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            themes.append({
                "theme": theme, "n": len(members), "share": round(len(members) / len(idx), 4),
                **_sentiment_stats([cols["compound"][i] for i in members]),
                "quotes": representative_quotes([cols["text"][i] for i in members], [cols["theme_weight"][i] for i in members],
                                                quotes),
            })
        out.append({"value": key, "n": len(idx), "n_unthemed": len(idx) - sum(len(m) for m in by_theme.values()),
                    **_sentiment_stats(compound),
                     "mean_score": round(float(np.mean(scores)), 4) if scores else None, "themes": themes})
    return out


def _order(definition: JourneyDefinition, by: str) -> list[str]:
    if by == "stage":
        return [s.id for s in definition.stages]
    if by == "touchpoint":
        return [t.id for t in definition.touchpoints]
    if by == "persona":
        return [p.id for p in definition.personas]
    if by == "kind":
        return ["survey", "ticket", "review", "interview", "other"]
    return []


def voice(engine: Engine, definition: JourneyDefinition, level: str | None = None, by: Sequence[str] = GROUPS,
          n_themes: int | None = None, seed: int = 0, quotes: int = QUOTES, method: str = "tfidf") -> dict:
    """Sentiment and themes of every customer text, overall and per stage / touchpoint / persona / period / kind.

    JSON-ready: {"level", "n_texts", "sentiment", "themes": [...], "groups": {by: [rows]}}."""
    level = level or definition.analysis.level
    for b in by:
        if b not in GROUPS:
            raise OptionError(f"--by must be one of {', '.join(GROUPS)}, not {b!r}")
    rows = text_rows(engine, definition, level)
    if rows.num_rows == 0:
        return {"level": level, "n_texts": 0, "sentiment": _sentiment_stats([]), "themes": [],
                "groups": {b: [] for b in by}}
    rows, themes = scored(rows, n_themes=n_themes, seed=seed, method=method)
    compound = np.asarray(rows.column("compound").to_numpy(zero_copy_only=False), dtype=float)
    return {
        "level": level,
        "themes_method": method,
        "n_texts": rows.num_rows,
        "units": len(set(rows.column("unit_id").to_pylist())),
        "sentiment": {"n": int((~np.isnan(compound)).sum()), **_sentiment_stats(compound)},
        "themes": themes,
        "n_unthemed": sum(t is None for t in rows.column("theme").to_pylist()),
        "groups": {b: group_table(rows, b, _order(definition, b), quotes) for b in by},
    }


def stage_sentiment(engine: Engine, definition: JourneyDefinition, level: str | None = None, ac=None,
                    personas: bool = True, rows: pa.Table | None = None) -> dict[str, dict[str, dict]]:
    """Mean VADER compound of customer texts per stage, for the map's emotion lane.

    Returns {"all": {stage_id: {"mean_compound", "n", "pct_negative", "pct_positive"}}, persona_id: {...}};
    stages without text are absent. Pass the map's `ac` (annotated events with stages) to reuse it.
    Blend with the survey emotion by `blend_emotion`. `rows`: text_rows already read (the map reads them once)."""
    rows = text_rows(engine, definition, level, ac=ac) if rows is None else rows
    compound = score_texts(rows.column("text").to_pylist()).compound
    stage, persona = rows.column("stage").to_pylist(), rows.column("persona").to_pylist()
    out: dict[str, dict[str, dict]] = {}
    for view in ["all", *(sorted(set(persona)) if personas else [])]:
        acc: dict[str, list[float]] = {}
        for s, p, c in zip(stage, persona, compound, strict=True):
            if s is not None and not math.isnan(c) and (view == "all" or p == view):
                acc.setdefault(s, []).append(c)
        out[view] = {s: {"n": len(v), **_sentiment_stats(v)} for s, v in acc.items()}
    return out


def blend_emotion(survey_emotion: float | None, survey_n: int, sentiment: dict | None) -> float | None:
    """A stage's emotion (-1..1) from its survey emotion (weight: answers) and its texts' mean compound
    (weight: texts), the way the map's `emotion` weights its survey kinds by n.

    >>> blend_emotion(0.5, 3, {"mean_compound": -0.5, "n": 1})
    0.25
    """
    parts = []
    if survey_emotion is not None and survey_n:
        parts.append((survey_emotion, survey_n))
    if sentiment and sentiment.get("mean_compound") is not None and sentiment.get("n"):
        parts.append((sentiment["mean_compound"], sentiment["n"]))
    total = sum(n for _, n in parts)
    return sum(x * n for x, n in parts) / total if total else None
