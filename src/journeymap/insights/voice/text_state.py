"""Customer texts scored at refresh time, folded per unit: the churn model's `sentiment` features (account level)
and the playbooks' comment entries (their level) read them instead of every text being read from the events,
de-duplicated and scored again at each refresh.

  state_texts_L       each customer text of a unit of level L (`texts.text_rows`, de-duplicated the same way):
                      unit_id, ts, seq, kind, text, compound (VADER, `sentiment.score_texts`)
  state_text_units_L  unit_id, events, signature: the unit's row of state_units_L (state.fold) its texts were
                      read from

meta: `texts.L.sources` (a digest of the voice sources they were read under) and `texts.L.journey` (the journey
version of the state they reflect). The account level is folded by every refresh that scores churn risk
(insights.risk.stored), a playbook's level by the evaluation of its comment entries (act.comments).

Which units are read again: a text row depends only on its unit's own events (a voice source is a rule on one
event's name, source, channel and properties; the text and score are its properties; the de-duplication compares
a unit's texts with each other), so a unit whose count and XOR signature of events are those its texts were read
from keeps them. Every other unit's texts are read from its state events and scored (new, late, merged, erased or
retention-trimmed events all change the signature); units gone from the state lose theirs; other voice sources
read every unit again. Written in one transaction: a refresh killed half-way leaves the previous texts, which the
meta keys then mark as not current.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import ibis.expr.types as ir
import pyarrow as pa

from journeymap.engine.annotate import annotation_key
from journeymap.engine.backends import Engine
from journeymap.ingest.store import has_table
from journeymap.insights.voice.sentiment import score_texts
from journeymap.insights.voice.texts import text_rows, voice_sources
from journeymap.journey.definition import JourneyDefinition
from journeymap.state.derived import stale_units
from journeymap.state.fold import meta, tables



def texts_table(level: str) -> str:
    return f"state_texts_{level}"


def _units_table(level: str) -> str:
    return f"state_text_units_{level}"


def _keys(level: str) -> tuple[str, str]:
    """The meta keys: the voice sources' digest, the journey version reflected."""
    return f"texts.{level}.sources", f"texts.{level}.journey"


TEXTS = texts_table("account")
"""The account level's scored texts, which the churn features read."""


@dataclass
class TextRefresh:
    mode: str
    """rebuild (every unit read) or fold (the changed units only)."""
    units_read: int
    units_dropped: int
    texts: int
    """Texts in the table after the refresh."""
    seconds: float


LAYOUT = "2"
"""The tables' columns: texts read under another layout are read again."""


def sources_key(definition: JourneyDefinition) -> str:
    """A digest of what the text rows are read under: the voice sources (configured, or the default ones), and
    the tables' layout."""
    data = [LAYOUT, *(s.model_dump(mode="json") for s in voice_sources(definition))]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _state(engine: Engine, definition: JourneyDefinition, level: str) -> dict | None:
    """The level's journey state tables when current on a DuckDB engine, else None."""
    if engine.name != "duckdb":
        return None
    return engine.journey.get((level, annotation_key(definition)))


def refresh_texts(engine: Engine, definition: JourneyDefinition, level: str = "account",
                  own_transaction: bool = True) -> TextRefresh | None:
    """Bring the scored texts up to the level's journey state (module docstring), in a transaction of its own or
    (`own_transaction` false) the caller's. None when that state is not current (readers then read the texts
    from the events, as without this table)."""
    started = time.perf_counter()
    state = _state(engine, definition, level)
    if state is None:
        return None
    con = engine.backend.con
    known, key = meta(con), sources_key(definition)
    units, texts, done_from = tables(level)["units"], texts_table(level), _units_table(level)
    sources_meta, journey_meta = _keys(level)
    if own_transaction:
        con.begin()
    try:
        whole = known.get(sources_meta) != key or not (has_table(con, texts) and has_table(con, done_from))
        if whole:
            con.execute(f"CREATE OR REPLACE TABLE {texts} (unit_id VARCHAR, ts TIMESTAMP, seq BIGINT, kind VARCHAR, "
                        "text VARCHAR, compound DOUBLE)")
            con.execute(f"CREATE OR REPLACE TABLE {done_from} (unit_id VARCHAR, events BIGINT, signature UBIGINT)")
        _, dropped = stale_units(con, level, done_from, "_texts_changed")
        for table in (texts, done_from):
            con.execute(f"DELETE FROM {table} WHERE unit_id IN (SELECT unit_id FROM _texts_changed)")
        changed = [u for (u,) in con.execute(f"SELECT unit_id FROM _texts_changed WHERE unit_id IN "
                                             f"(SELECT unit_id FROM {units})").fetchall()]
        if changed:
            with engine.scope():
                ids = engine.in_memory(pa.table({"unit_id": pa.array(changed, pa.string())}))
                ac = engine.table(state["events"])
                scored = scored_rows(engine, definition, level, ac=ac.semi_join(ids, ac.unit_id == ids.unit_id))
            con.register("_texts_rows", scored)
            try:
                con.execute(f"INSERT INTO {texts} SELECT unit_id, ts, seq, kind, text, compound FROM _texts_rows")
            finally:
                con.unregister("_texts_rows")
            con.execute(f"INSERT INTO {done_from} SELECT unit_id, events, signature FROM {units} "
                        "WHERE unit_id IN (SELECT unit_id FROM _texts_changed)")
        con.execute("DROP TABLE _texts_changed")
        journey = known.get(f"state.{level}.journey", "0")
        for k, v in ((sources_meta, key), (journey_meta, journey)):
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [k, v])
        (n,) = con.execute(f"SELECT count(*) FROM {texts}").fetchone()
        if own_transaction:
            con.commit()
    except BaseException:
        if own_transaction:
            con.rollback()
        raise
    return TextRefresh("rebuild" if whole else "fold", len(changed), int(dropped), int(n),
                       round(time.perf_counter() - started, 3))


def scored_rows(engine: Engine, definition: JourneyDefinition, level: str, ac=None) -> pa.Table:
    """Customer texts as `texts.text_rows` reads them (from `ac`, the annotated events, or the level's), with VADER's
    compound: unit_id, ts, seq, kind, text, compound. What the tables hold, for the units read."""
    rows = text_rows(engine, definition, level, ac=ac)
    return rows.select(["unit_id", "ts", "seq", "kind", "text"]).append_column(
        "compound", pa.array(score_texts(rows.column("text").to_pylist()).compound, pa.float64(), from_pandas=True))


def stale_because(con, definition: JourneyDefinition, level: str = "account") -> str | None:
    """Why state_texts_L does not reflect the level's journey state as the store's meta records it under these
    voice sources (None: it does; the caller knows whether that state is current)."""
    if not has_table(con, texts_table(level)):
        return "not written yet"
    known = meta(con)
    sources_meta, journey_meta = _keys(level)
    if known.get(sources_meta) != sources_key(definition):
        return "journeymap.yml's voice sources changed since"
    if known.get(journey_meta) != known.get(f"state.{level}.journey"):
        return "the journey state moved on since"
    return None


def stored_texts(engine: Engine, definition: JourneyDefinition, level: str = "account") -> ir.Table | None:
    """The scored texts (unit_id, ts, seq, kind, text, compound) when they reflect the level's current journey
    state under these voice sources; None otherwise (read them with texts.text_rows and score them)."""
    if _state(engine, definition, level) is None or stale_because(engine.backend.con, definition, level):
        return None
    return engine.table(texts_table(level))


def erase_where(units: dict[str, str], seqs: str) -> dict[str, str]:
    """Per table, the rows of the erased units and events (`journeymap erase`), as SQL over the tables `units`
    (level -> the table of its erased unit ids) and `seqs` (the erased events' seq)."""
    out = {}
    for level, ids in units.items():
        out[texts_table(level)] = f"unit_id IN (FROM {ids}) OR seq IN (FROM {seqs})"
        out[_units_table(level)] = f"unit_id IN (FROM {ids})"
    return out


def erase(con, units: dict[str, list[str]], seqs: list[int]) -> None:
    """Delete the texts of these events and the rows of these units (level -> unit ids), before the refresh that
    follows an erase reads the units that lost events again (`journeymap erase`)."""
    for level, ids in units.items():
        for table, where in ((texts_table(level), "unit_id IN (SELECT unnest(?::VARCHAR[])) "
                                                   "OR seq IN (SELECT unnest(?::BIGINT[]))"),
                             (_units_table(level), "unit_id IN (SELECT unnest(?::VARCHAR[]))")):
            if has_table(con, table):
                con.execute(f"DELETE FROM {table} WHERE {where}", [ids, seqs] if "seq" in where else [ids])


def status(con, definition: JourneyDefinition | None, levels=("person", "account")) -> list[dict]:
    """The scored texts of each level that has them (`journeymap state`): {name, table, current, stale_because,
    rows, model_version (None)}. Stale texts are not read: readers read the events until the next refresh."""
    out = []
    for level in levels:
        table = texts_table(level)
        if not has_table(con, table):
            continue
        why = "no journeymap.yml" if definition is None else stale_because(con, definition, level)
        out.append({"name": f"customer texts ({level})", "table": table, "current": why is None,
                    "stale_because": why, "rows": con.execute(f"SELECT count(*) FROM {table}").fetchone()[0],
                    "model_version": None})
    return out
