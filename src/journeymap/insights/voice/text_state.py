"""Customer texts scored at refresh time, folded per account: the churn model's `sentiment` features read them
instead of every text being read from the events, de-duplicated and scored again at each refresh.

  state_texts_account  each customer text of an account (`texts.text_rows` at the account level, de-duplicated
                       the same way): unit_id, ts, seq, compound (VADER, `sentiment.score_texts`)
  state_text_units     unit_id, events, signature: the account's row of state_units_account (state.fold) its
                       texts were read from

meta: `texts.account.sources` (a digest of the voice sources they were read under) and `texts.account.journey`
(the journey version of the state they reflect).

Which accounts are read again: a text row depends only on its account's own events (a voice source is a rule on
one event's name, source, channel and properties; the text and score are its properties; the de-duplication
compares an account's texts with each other), so an account whose count and XOR signature of events are those its
texts were read from keeps them. Every other account's texts are read from its state events and scored (new,
late, merged, erased or retention-trimmed events all change the signature); accounts gone from the state lose
theirs; other voice sources read every account again. Written in one transaction: a refresh killed half-way
leaves the previous texts, which the meta keys then mark as not current.
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
from journeymap.state.fold import meta, tables

LEVEL = "account"
TEXTS = "state_texts_account"
UNITS = "state_text_units"
SOURCES_KEY, JOURNEY_KEY = f"texts.{LEVEL}.sources", f"texts.{LEVEL}.journey"


@dataclass
class TextRefresh:
    mode: str
    """rebuild (every account read) or fold (the changed accounts only)."""
    accounts_read: int
    accounts_dropped: int
    texts: int
    """Texts in the table after the refresh."""
    seconds: float


def sources_key(definition: JourneyDefinition) -> str:
    """A digest of what the text rows are read under: the voice sources (configured, or the default ones)."""
    data = [s.model_dump(mode="json") for s in voice_sources(definition)]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _state(engine: Engine, definition: JourneyDefinition) -> dict | None:
    """The account level's journey state tables when current on a DuckDB engine, else None."""
    if engine.name != "duckdb":
        return None
    return engine.journey.get((LEVEL, annotation_key(definition)))


def refresh_texts(engine: Engine, definition: JourneyDefinition) -> TextRefresh | None:
    """Bring the scored texts up to the account level's journey state (module docstring). None when that state is
    not current (the features then read the texts from the events, as without this table)."""
    started = time.perf_counter()
    state = _state(engine, definition)
    if state is None:
        return None
    con = engine.backend.con
    known, key = meta(con), sources_key(definition)
    units = tables(LEVEL)["units"]
    con.begin()
    try:
        whole = known.get(SOURCES_KEY) != key or not (has_table(con, TEXTS) and has_table(con, UNITS))
        if whole:
            con.execute(f"CREATE OR REPLACE TABLE {TEXTS} (unit_id VARCHAR, ts TIMESTAMP, seq BIGINT, compound DOUBLE)")
            con.execute(f"CREATE OR REPLACE TABLE {UNITS} (unit_id VARCHAR, events BIGINT, signature UBIGINT)")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _texts_changed AS
                        SELECT u.unit_id FROM {units} u LEFT JOIN {UNITS} t USING (unit_id)
                        WHERE t.unit_id IS NULL OR t.events <> u.events OR t.signature <> u.signature
                        UNION ALL
                        SELECT unit_id FROM {UNITS} WHERE unit_id NOT IN (SELECT unit_id FROM {units})""")
        for table in (TEXTS, UNITS):
            con.execute(f"DELETE FROM {table} WHERE unit_id IN (SELECT unit_id FROM _texts_changed)")
        (dropped,) = con.execute(f"SELECT count(*) FROM _texts_changed WHERE unit_id NOT IN (SELECT unit_id FROM {units})"
                                 ).fetchone()
        changed = [u for (u,) in con.execute(f"SELECT unit_id FROM _texts_changed WHERE unit_id IN "
                                             f"(SELECT unit_id FROM {units})").fetchall()]
        if changed:
            with engine.scope():
                ids = engine.in_memory(pa.table({"unit_id": pa.array(changed, pa.string())}))
                ac = engine.table(state["events"])
                rows = text_rows(engine, definition, LEVEL, ac=ac.semi_join(ids, ac.unit_id == ids.unit_id))
            scored = pa.table({"unit_id": rows.column("unit_id"), "ts": rows.column("ts"), "seq": rows.column("seq"),
                               "compound": pa.array(score_texts(rows.column("text").to_pylist()).compound,
                                                    pa.float64(), from_pandas=True)})
            con.register("_texts_rows", scored)
            try:
                con.execute(f"INSERT INTO {TEXTS} SELECT unit_id, ts, seq, compound FROM _texts_rows")
            finally:
                con.unregister("_texts_rows")
            con.execute(f"INSERT INTO {UNITS} SELECT unit_id, events, signature FROM {units} "
                        "WHERE unit_id IN (SELECT unit_id FROM _texts_changed)")
        con.execute("DROP TABLE _texts_changed")
        journey = known.get(f"state.{LEVEL}.journey", "0")
        for k, v in ((SOURCES_KEY, key), (JOURNEY_KEY, journey)):
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [k, v])
        (n,) = con.execute(f"SELECT count(*) FROM {TEXTS}").fetchone()
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return TextRefresh("rebuild" if whole else "fold", len(changed), int(dropped), int(n),
                       round(time.perf_counter() - started, 3))


def stored_texts(engine: Engine, definition: JourneyDefinition) -> ir.Table | None:
    """The scored texts (unit_id, ts, seq, compound) when they reflect the account level's current journey state
    under these voice sources; None otherwise (read them with texts.text_rows and score them)."""
    if _state(engine, definition) is None:
        return None
    con = engine.backend.con
    known = meta(con)
    if not has_table(con, TEXTS) or known.get(SOURCES_KEY) != sources_key(definition) or \
            known.get(JOURNEY_KEY) != known.get(f"state.{LEVEL}.journey"):
        return None
    return engine.table(TEXTS)


def erase(con, accounts: list[str], seqs: list[int]) -> dict[str, int]:
    """Delete the texts of these events and the rows of these accounts (`journeymap erase`, before the refresh that
    follows it reads the accounts that lost events again); returns the rows deleted per table."""
    out = {}
    for table, where in ((TEXTS, "unit_id IN (SELECT unnest(?::VARCHAR[])) OR seq IN (SELECT unnest(?::BIGINT[]))"),
                         (UNITS, "unit_id IN (SELECT unnest(?::VARCHAR[]))")):
        if has_table(con, table):
            params = [accounts, seqs] if table == TEXTS else [accounts]
            out[table] = con.execute(f"DELETE FROM {table} WHERE {where}", params).fetchone()[0]
    return out


ERASE_WHERE = {TEXTS: "unit_id IN (FROM {accounts}) OR seq IN (FROM {seqs})", UNITS: "unit_id IN (FROM {accounts})"}
"""What `erase` deletes, as SQL over tables of the erased accounts and event seqs (the erase's count before and
after)."""
