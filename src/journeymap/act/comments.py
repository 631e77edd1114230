"""The customer texts a `comment` entry reads, with their sentiment (docs/playbooks.md): the scored texts of the
playbook's level, folded per unit at each evaluation (insights.voice.text_state: `state_texts_L`).

VADER runs in Python, so a refresh reads and scores only the texts of the units whose events changed since; the
entry's SQL (act.triggers) matches the theme and the sentiment there. Texts come from the voice sources of the
definition (insights.voice.texts), read from the journey state, so they are the texts `journeymap voice` reads.
Units that lost events (unloaded, erased, aged out) are read again, so their texts go at the same time.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from journeymap.engine.backends import duckdb_engine
from journeymap.insights.voice.text_state import refresh_texts, stored_texts, texts_table
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.playbooks import Comment, Playbook
from journeymap.state.read import current_tables

NEGATIVE, POSITIVE = -0.05, 0.05  # VADER's usual cut-offs, as insights.voice.sentiment.label
LEGACY = "act_texts"
"""Where an earlier journeymap kept the scored texts of comment entries (per level, event and text): dropped."""


def levels(definition: JourneyDefinition, playbooks: list[Playbook]) -> list[str]:
    return sorted({definition.playbook_level(p) for p in playbooks if p.entry.comment is not None})


def table(level: str) -> str:
    """The table a comment entry of this level reads."""
    return texts_table(level)


def prepare(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition, levels: list[str]) -> int:
    """Fold the scored texts of these levels (their state current), in the evaluation's transaction (none on a
    dry run: each statement then commits, and a fold cut short reads its units again next time); returns how
    many units were read again."""
    con.execute(f"DROP TABLE IF EXISTS {LEGACY}")
    engine = duckdb_engine(con)
    engine.journey = current_tables(con, definition)
    read = 0
    for level in levels:
        done = refresh_texts(engine, definition, level, own_transaction=False)
        read += done.units_read if done is not None else 0
    return read


def _regex(terms: list[str]) -> str:
    """A whole-word, case-insensitive RE2 pattern matching any term (metacharacters taken literally)."""
    special = set("\\.^$|?*+()[]{}")
    escaped = ["".join("\\" + c if c in special else c for c in t.lower()) for t in terms]
    return r"(?i)(^|\W)(" + "|".join(escaped) + r")(\W|$)"


def candidates_sql(c: Comment, level: str, now: str, unit_filter: str, literal) -> str:
    """SQL: unit_id, ts, seq, detail of each text on the theme with the sentiment asked for, at or before now."""
    pattern = literal(_regex(c.theme))
    where = [f"ts <= {now}", f"regexp_matches(text, {pattern})", unit_filter]
    if c.sentiment == "negative":
        where.append(f"compound <= {NEGATIVE}")
    elif c.sentiment == "positive":
        where.append(f"compound >= {POSITIVE}")
    if c.kinds:
        where.append(f"kind IN ({', '.join(literal(k) for k in c.kinds)})")
    return f"""
        SELECT unit_id, ts, seq,
               json_object('theme', lower(regexp_extract(text, {pattern}, 2)), 'kind', kind,
                           'sentiment', round(compound, 3), 'text', left(text, 200))::VARCHAR AS detail
        FROM {table(level)} WHERE {' AND '.join(where)}"""


def _texts(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition, level: str) -> pa.Table:
    """The level's customer texts (text, kind): those the last evaluation folded when they are current
    (insights.voice.text_state), else read from the journey state as `texts.text_rows` reads them."""
    from journeymap.insights.voice.texts import text_rows

    engine = duckdb_engine(con)
    engine.journey = current_tables(con, definition)
    stored = stored_texts(engine, definition, level)
    if stored is not None:
        return engine.execute(stored.select("text", "kind"))
    return text_rows(engine, definition, level).select(["text", "kind"])


def theme_findings(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition) -> list[dict]:
    """`validate`'s warnings for comment entries whose theme no customer text mentions (whatever its
    sentiment), with the words the texts do use that are closest to each term ("did you mean")."""
    from journeymap.errors import did_you_mean

    out = []
    by_level: dict[str, pa.Table] = {}
    for i, p in enumerate(definition.playbooks):
        c = p.entry.comment
        if c is None:
            continue
        level = definition.playbook_level(p)
        if level not in by_level:
            by_level[level] = _texts(con, definition, level)
        texts = by_level[level]
        con.register("_act_theme_texts", texts)
        try:
            kinds = f"AND kind IN ({', '.join(repr(k) for k in c.kinds)})" if c.kinds else ""
            n, hits = con.execute(f"SELECT count(*), count(*) FILTER (WHERE regexp_matches(text, ?)) "
                                  f"FROM _act_theme_texts WHERE TRUE {kinds}", [_regex(c.theme)]).fetchall()[0]
            if hits:
                continue
            words = [r[0] for r in con.execute(
                f"SELECT w FROM (SELECT unnest(regexp_split_to_array(lower(text), '[^a-z0-9]+')) AS w "
                f"FROM _act_theme_texts WHERE TRUE {kinds}) WHERE length(w) > 2 GROUP BY w ORDER BY count(*) DESC "
                f"LIMIT 5000").fetchall()]
        finally:
            con.unregister("_act_theme_texts")
        terms = " or ".join(repr(t) for t in c.theme)
        hint = " ".join(filter(None, (did_you_mean(t.lower(), words) for t in c.theme))) or (
            f"words the texts use most: {', '.join(repr(w) for w in words[:8])}" if words else
            "no customer texts yet: add survey comments, tickets or reviews (docs/metrics/voice-of-customer.md)")
        out.append({"key": f"playbooks[{i}].entry.comment.theme",
                    "message": f"no customer text mentions {terms} (of {n:,} texts{' of these kinds' if kinds else ''})",
                    "suggestion": hint})
    return out
