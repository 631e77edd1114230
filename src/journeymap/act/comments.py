"""The customer texts a `comment` entry reads, with their sentiment, kept in `act_texts` (docs/playbooks.md).

VADER runs in Python, so a refresh scores only the texts it has not scored before: `act_texts` holds one row
per (level, event seq, text) with the unit, time, kind and VADER's compound score, and the entry's SQL
(act.triggers) matches the theme and the sentiment there. Texts come from the voice sources of the definition
(insights.voice.texts), read from the journey state, so they are the texts `journeymap voice` reads. Rows of
events no longer in the state (unloaded, erased, aged out) are dropped at the same time.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from journeymap.engine.backends import duckdb_engine
from journeymap.journey.definition import JourneyDefinition
from journeymap.journey.playbooks import Comment, Playbook
from journeymap.state.fold import tables
from journeymap.state.read import current_tables

TABLE = "act_texts"
DDL = (f"CREATE TABLE IF NOT EXISTS {TABLE} (level VARCHAR NOT NULL, seq BIGINT NOT NULL, unit_id VARCHAR NOT NULL, "
       "ts TIMESTAMP, kind VARCHAR, text VARCHAR NOT NULL, compound DOUBLE, PRIMARY KEY (level, seq, text))")
NEGATIVE, POSITIVE = -0.05, 0.05  # VADER's usual cut-offs, as insights.voice.sentiment.label


def levels(definition: JourneyDefinition, playbooks: list[Playbook]) -> list[str]:
    return sorted({definition.playbook_level(p) for p in playbooks if p.entry.comment is not None})


def prepare(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition, levels: list[str]) -> int:
    """Score the texts not scored yet at these levels (their state current); returns how many were scored."""
    from journeymap.insights.voice.sentiment import score_texts
    from journeymap.insights.voice.texts import text_rows

    scored = 0
    for level in levels:
        con.execute(DDL)
        engine = duckdb_engine(con)
        engine.journey = current_tables(con, definition)
        rows = text_rows(engine, definition, level).select(["unit_id", "ts", "seq", "kind", "text"])
        con.register("_act_texts_now", rows)
        try:
            con.execute(f"DELETE FROM {TABLE} WHERE level = ? AND seq NOT IN (SELECT seq FROM {tables(level)['events']})",
                        [level])
            new = con.execute(f"""SELECT n.* FROM _act_texts_now n ANTI JOIN (SELECT seq, text FROM {TABLE}
                                  WHERE level = ?) o ON o.seq = n.seq AND o.text = n.text""", [level]).to_arrow_table()
        finally:
            con.unregister("_act_texts_now")
        if not new.num_rows:
            continue
        compound = score_texts(new.column("text").to_pylist()).compound
        new = new.append_column("compound", pa.array(compound, pa.float64()))
        con.register("_act_texts_new", new)
        try:
            con.execute(f"INSERT OR IGNORE INTO {TABLE} SELECT ?, seq, unit_id, ts, kind, text, compound "
                        "FROM _act_texts_new", [level])
        finally:
            con.unregister("_act_texts_new")
        scored += new.num_rows
    return scored


def _regex(terms: list[str]) -> str:
    """A whole-word, case-insensitive RE2 pattern matching any term (metacharacters taken literally)."""
    special = set("\\.^$|?*+()[]{}")
    escaped = ["".join("\\" + c if c in special else c for c in t.lower()) for t in terms]
    return r"(?i)(^|\W)(" + "|".join(escaped) + r")(\W|$)"


def candidates_sql(c: Comment, level: str, now: str, unit_filter: str, literal) -> str:
    """SQL: unit_id, ts, seq, detail of each text on the theme with the sentiment asked for, at or before now."""
    pattern = literal(_regex(c.theme))
    where = [f"level = {literal(level)}", f"ts <= {now}", f"regexp_matches(text, {pattern})", unit_filter]
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
        FROM {TABLE} WHERE {' AND '.join(where)}"""


def theme_findings(con: duckdb.DuckDBPyConnection, definition: JourneyDefinition) -> list[dict]:
    """`validate`'s warnings for comment entries whose theme no customer text mentions (whatever its
    sentiment), with the words the texts do use that are closest to each term ("did you mean")."""
    from journeymap.errors import did_you_mean
    from journeymap.insights.voice.texts import text_rows

    out = []
    by_level: dict[str, pa.Table] = {}
    for i, p in enumerate(definition.playbooks):
        c = p.entry.comment
        if c is None:
            continue
        level = definition.playbook_level(p)
        if level not in by_level:
            engine = duckdb_engine(con)
            engine.journey = current_tables(con, definition)
            by_level[level] = text_rows(engine, definition, level).select(["text", "kind"])
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
