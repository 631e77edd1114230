"""The scored customer texts folded per account at each refresh (insights.voice.text_state) equal a read of every
text from the events, scored from scratch.

Hypothesis draws logs of customer texts (ticket subjects said on two event names, comments beside subjects on one
event, the same words with a trailing space, anonymous rows an identify call later links to their person, rows
without a text), shuffles them (most batches then bring late events), cuts them into batches, loads each through a
real workspace (which stitches and folds the journey state) and folds the texts after each; the first batch may be
unloaded at the end.
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from test_engine_reference import DEFINITION, Row
from test_state_fold import draw_arrival, write_batch

from journeymap.engine.backends import duckdb_engine
from journeymap.insights.voice.sentiment import score_texts
from journeymap.insights.voice.text_state import refresh_texts, stored_texts, texts_table
from journeymap.insights.voice.texts import text_rows
from journeymap.state.read import current_tables
from journeymap.workspace import Workspace

PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if os.environ.get("JOURNEYMAP_SHRINK") else [])
PERSONS, ACCOUNTS = ["p1", "p2", "p3", "p4"], ["a1", "a2"]
WORDS = ["the export is slow", "the export is slow ", "Love the new reports!", "terrible support, nobody answered"]
TEXT_EVENTS = [
    ("ticket_created", "support", lambda d: {"subject": d(st.sampled_from(WORDS))}),
    ("ticket_solved", "support", lambda d: {"subject": d(st.sampled_from(WORDS))}),
    ("feedback_given", "survey", lambda d: {"comment": d(st.sampled_from(WORDS)), "subject": d(st.sampled_from(WORDS))}),
    ("review_posted", "marketing", lambda d: {"body": d(st.sampled_from(WORDS))}),
    ("report_created", "product", lambda d: {}),
]


@st.composite
def text_logs(draw) -> list[Row]:
    home = {p: draw(st.sampled_from(ACCOUNTS)) for p in PERSONS}
    raw = []
    for _ in range(draw(st.integers(1, 30))):
        person = draw(st.sampled_from(PERSONS))
        hour = draw(st.integers(0, 20))
        if draw(st.integers(0, 9)) == 0:
            raw.append((person, home[person], "identify", "identify", "product", None, {}, {}, hour))
            continue
        name, source, props = draw(st.sampled_from(TEXT_EVENTS))
        names = draw(st.booleans())  # the row names the account, or only the person does (through its traits)
        raw.append((person, home[person] if names else None, name, "track", source, None, props(draw), None, hour))
    return [Row(i, *r) for i, r in enumerate(raw)]


def scored_from_scratch(con, definition) -> list[tuple]:
    """Every account's texts read from the journey events with no state, scored now."""
    engine = duckdb_engine(con)
    with engine.scope():
        rows = text_rows(engine, definition, "account")
    compound = score_texts(rows.column("text").to_pylist()).compound
    return sorted(zip(rows.column("unit_id").to_pylist(), rows.column("ts").to_pylist(),
                      rows.column("seq").to_pylist(), [float(c) for c in compound], strict=True))


def stored_rows(con, level: str = "account") -> list[tuple]:
    return sorted(con.execute(f"SELECT unit_id, ts, seq, compound FROM {texts_table(level)}").fetchall())


@settings(max_examples=20, deadline=None, phases=PHASES,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=text_logs(), data=st.data())
def test_texts_folded_batch_by_batch_equal_every_text_read_and_scored(tmp_path_factory, rows, data):
    batches, anonymous, unload = draw_arrival(rows, data)
    base = tmp_path_factory.mktemp("texts")
    with Workspace(base / "ws") as ws:
        ws.path.mkdir()
        (ws.path / "journeymap.yml").write_text(json.dumps(DEFINITION))  # JSON is YAML; no voice: the defaults

        def fold_texts():
            engine = ws.engine
            assert engine.journey == current_tables(ws.con, ws.definition) != {}
            done = refresh_texts(engine, ws.definition)
            event(f"texts {done.mode}")
            if done.units_dropped:
                event("accounts dropped")
            return done

        for n, batch in enumerate(batches):
            ws.ingest([str(write_batch([(rows[i], anonymous[i]) for i in batch], base / f"batch{n}.csv"))],
                      max_reject_rate=None)
            assert fold_texts().mode == ("rebuild" if n == 0 else "fold")
        if unload and len(batches) > 1:
            ws.unload(ws.loads()[0]["load_id"])
            fold_texts()
        folded = stored_rows(ws.con)
        event("some texts" if folded else "no texts")
        assert folded == scored_from_scratch(ws.con, ws.definition)
        assert stored_texts(ws.engine, ws.definition) is not None
        # nothing new: no account is read again, and the texts stay as they are
        again = refresh_texts(ws.engine, ws.definition)
        assert (again.mode, again.units_read, again.units_dropped) == ("fold", 0, 0)
        assert stored_rows(ws.con) == folded


def test_an_account_unloaded_whole_loses_its_texts_and_other_voice_sources_read_every_account(tmp_path):
    def batch(name: str, rows: list[tuple]) -> str:
        path = tmp_path / name
        path.write_text("customer_id,account_id,event,ts,source,message_id,properties\n" + "".join(
            f"{c},{a},{e},{ts},support,{m},\"{json.dumps(p).replace(chr(34), chr(34) * 2)}\"\n"
            for c, a, e, ts, m, p in rows))
        return str(path)

    with Workspace(tmp_path / "ws") as ws:
        ws.path.mkdir()
        (ws.path / "journeymap.yml").write_text(json.dumps(DEFINITION))
        ws.ingest([batch("a.csv", [("p9", "a9", "ticket_created", "2024-01-01T00:00:00Z", "m1", {"subject": "slow export"}),
                                   ("p1", "a1", "ticket_created", "2024-01-01T00:00:00Z", "m2", {"subject": "love it"})])])
        ws.ingest([batch("b.csv", [("p1", "a1", "ticket_solved", "2024-01-02T00:00:00Z", "m3", {"body": "thanks, fixed"})])])
        assert refresh_texts(ws.engine, ws.definition).texts == 3
        ws.unload(ws.loads()[0]["load_id"])  # a9 had events in the first load only
        done = refresh_texts(ws.engine, ws.definition)
        assert (done.mode, done.units_read, done.units_dropped, done.texts) == ("fold", 1, 1, 1)
        assert [r[0] for r in stored_rows(ws.con)] == ["a1"] and stored_rows(ws.con) == scored_from_scratch(ws.con, ws.definition)
        # voice sources that read only `body`: every account read again, under them
        (ws.path / "journeymap.yml").write_text(json.dumps({
            **DEFINITION, "voice": [{"match": {"event": "ticket_solved"}, "text": "body", "kind": "ticket"}]}))
        ws.__dict__.pop("definition", None)
        assert stored_texts(ws.engine, ws.definition) is None  # read under the other sources: not these texts
        done = refresh_texts(ws.engine, ws.definition)
        assert (done.mode, done.texts) == ("rebuild", 1) and stored_rows(ws.con) == scored_from_scratch(ws.con, ws.definition)


def test_an_account_whose_events_change_but_not_their_count_is_read_again(tmp_path):
    """Her account-less comment moves from a1 to a2 when she is identified with a2, in the batch that brings a1 a
    new event: a1 still has two events, but not the same ones (its signature changed, its count did not)."""
    from test_engine_reference import Row
    from test_state_fold import write_batch

    first = [Row(0, "p1", "a1", "identify", "identify", "product", None, {}, {}, 0),
             Row(1, "p1", None, "feedback_given", "track", "survey", None, {"comment": "terrible support"}, None, 1)]
    second = [Row(2, "p1", "a2", "identify", "identify", "product", None, {}, {}, 2),
              Row(3, "p3", "a1", "report_created", "track", "product", None, {}, None, 3)]
    with Workspace(tmp_path / "ws") as ws:
        ws.path.mkdir()
        (ws.path / "journeymap.yml").write_text(json.dumps(DEFINITION))
        ws.ingest([str(write_batch([(r, False) for r in first], tmp_path / "a.csv"))])
        refresh_texts(ws.engine, ws.definition)
        a1 = "SELECT events, signature FROM state_units_account WHERE unit_id = 'a1'"
        before = ws.con.execute(a1).fetchone()
        assert [r[0] for r in stored_rows(ws.con)] == ["a1"]
        ws.ingest([str(write_batch([(r, False) for r in second], tmp_path / "b.csv"))])
        after = ws.con.execute(a1).fetchone()
        assert after[0] == before[0] and after[1] != before[1]  # the case this test is about
        refresh_texts(ws.engine, ws.definition)
        assert [r[0] for r in stored_rows(ws.con)] == ["a2"]  # her comment went with her
        assert stored_rows(ws.con) == scored_from_scratch(ws.con, ws.definition)
