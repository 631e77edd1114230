"""Incremental identity resolution (identity.delta) against resolving everything again.

Random events over small overlapping identifier pools (test_identity's: placeholders, case and whitespace,
alias calls whose previous_id names a user, an anonymous id or a stranger, identify traits) arrive in random
batches; after every batch one store stitches incrementally and a copy of its events is stitched whole. Every
identity table, the stitch's counts, and what the journey state's fold is told (the moves) must agree.
"""

from __future__ import annotations

import importlib
import json

import duckdb
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from journeymap.identity import stitch
from journeymap.ingest.store import open_store
from test_identity import insert, random_event

stitch_module = importlib.import_module("journeymap.identity.stitch")

TABLES = ("identity_map", "persons", "accounts", "journey_events", "identity_resolved", "identity_traits",
          "identity_activity")
traits = st.one_of(st.none(), st.dictionaries(st.sampled_from(["plan", "name", "role"]),
                                              st.one_of(st.none(), st.sampled_from(["a", "b", 1])), max_size=2))
traited_event = st.tuples(random_event, traits).map(
    lambda pair: {**pair[0], **({"traits": json.dumps(pair[1])} if pair[1] is not None else {})})


def table_rows(con, table: str) -> list[tuple]:
    return sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)


def snapshot(con) -> dict[str, list[tuple]]:
    return {table: table_rows(con, table) for table in TABLES}


def resolved_whole(con, tmp_path) -> tuple[dict, dict]:
    """The identity tables and counts of one stitch of the same events, in a fresh store."""
    fresh = open_store(tmp_path)
    fresh.register("_copy", con.sql("SELECT * FROM events ORDER BY seq").to_arrow_table())
    fresh.execute("INSERT INTO events SELECT * FROM _copy")
    fresh.unregister("_copy")
    result = stitch(fresh)
    assert result.identity == "resolved"
    rows = snapshot(fresh)
    fresh.close()
    return rows, result.to_dict()


def units_of(con, level: str) -> dict[int, str | None]:
    column = "person_id" if level == "person" else "account_id"
    return dict(con.execute(f"SELECT seq, {column} FROM journey_events").fetchall())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(events=st.lists(traited_event, min_size=1, max_size=30), cuts=st.sets(st.integers(1, 29), max_size=6))
@example(  # an alias whose previous_id is taken for an anonymous id, then the same value arrives as a user_id
    events=[{"type": "alias", "previous_id": "u3", "user_id": "u1"}, {"type": "track", "user_id": "u3"}], cuts={1})
@example(  # an older alias's previous_id, then an anonymous id and a user_id of that value
    events=[{"type": "alias", "previous_id": "a5", "user_id": "u1"}, {"type": "track", "anonymous_id": "a5"},
            {"type": "track", "user_id": "a5"}], cuts={1, 2})
@example(  # two persons merged by a later identify, each with traits
    events=[{"type": "identify", "user_id": "u1", "traits": '{"plan": "a"}'},
            {"type": "identify", "anonymous_id": "a1", "email": "ann@x.io", "traits": '{"plan": "b", "name": 1}'},
            {"type": "identify", "user_id": "u1", "email": "ann@x.io"}], cuts={1, 2})
def test_stitching_batch_by_batch_equals_resolving_everything(tmp_path_factory, events, cuts):
    cuts = sorted(c for c in cuts if c < len(events))
    batches = [events[i:j] for i, j in zip([0, *cuts], [*cuts, len(events)], strict=True) if events[i:j]]
    con = open_store(tmp_path_factory.mktemp("delta"))
    ways = set()
    for n, batch in enumerate(batches):
        before = {level: units_of(con, level) for level in ("person", "account")} if n else None
        insert(con, batch)
        result = stitch(con)
        ways.add(result.identity)
        whole, counts = resolved_whole(con, tmp_path_factory.mktemp("whole"))
        assert snapshot(con) == whole, f"after batch {n}"
        assert {k: v for k, v in result.to_dict().items() if k not in ("seconds", "identity", "journey_events")} \
            == {k: v for k, v in counts.items() if k not in ("seconds", "identity", "journey_events")}
        if before is None or result.journey_events != "updated":
            continue
        # every unit whose earlier events changed hands is in the moves the fold reads
        (version,) = con.execute("SELECT value::BIGINT FROM meta WHERE key = 'journey.version'").fetchone()
        for level in ("person", "account"):
            after = units_of(con, level)
            changed = {u for seq, was in before[level].items() if after[seq] != was for u in (was, after[seq])}
            moves = {u for (u,) in con.execute("SELECT unit_id FROM journey_moves WHERE version = ? AND level = ?",
                                               [version, level]).fetchall()}
            assert changed - {None} <= moves, level
    for way in ways:
        event(f"identity {way}")
    con.close()


def test_the_stitch_after_new_events_updates_identity(tmp_path):
    """The ordinary case takes the incremental way: new persons, a merge, new traits."""
    con = open_store(tmp_path)
    insert(con, [{"type": "identify", "user_id": "u1", "anonymous_id": "a1", "traits": '{"plan": "pro"}'},
                 {"type": "track", "anonymous_id": "a2"}])
    assert stitch(con).identity == "resolved"
    insert(con, [{"type": "identify", "user_id": "u1", "anonymous_id": "a2", "traits": '{"plan": "team"}'},
                 {"type": "track", "anonymous_id": "a3"}])
    result = stitch(con)
    assert (result.identity, result.journey_events) == ("updated", "updated")
    assert con.execute("SELECT person_id, traits FROM persons ORDER BY person_id").fetchall() == [
        ("a:a3", "{}"), ("u:u1", '{"plan":"team"}')]
    assert con.execute("SELECT DISTINCT level, unit_id FROM journey_moves ORDER BY ALL").fetchall() == [
        ("person", "a:a2"), ("person", "u:u1")]


def test_a_store_from_before_the_layout_is_resolved_whole(tmp_path):
    con = open_store(tmp_path)
    insert(con, [{"type": "identify", "user_id": "u1", "anonymous_id": "a1"}])
    stitch(con)
    con.execute("DELETE FROM meta WHERE key = 'identity.layout'")
    insert(con, [{"type": "track", "anonymous_id": "a1"}])
    assert stitch(con).identity == "resolved"
    # layout 1 kept identity_activity without its keys: such a table is aggregated again, with them
    con.execute("ALTER TABLE identity_activity DROP activity_key")
    con.execute("ALTER TABLE identity_activity DROP tuple_key")
    con.execute("INSERT OR REPLACE INTO meta VALUES ('identity.layout', '1')")
    insert(con, [{"type": "track", "anonymous_id": "a1"}])
    assert stitch(con).identity == "resolved"
    assert con.execute("SELECT count(activity_key), sum(events) FROM identity_activity").fetchall() == [(2, 3)]
    insert(con, [{"type": "track", "anonymous_id": "a1"}])
    assert stitch(con).identity == "updated"


def test_an_orphan_previous_id_named_as_a_user_later_is_resolved_whole(tmp_path, monkeypatch):
    con = open_store(tmp_path)
    insert(con, [{"type": "alias", "previous_id": "u3", "user_id": "u1"}])
    stitch(con)
    assert con.execute("SELECT * FROM identity_map ORDER BY ALL").fetchall() == [
        ("anonymous_id", "u3", "u:u1"), ("user_id", "u1", "u:u1")]
    insert(con, [{"type": "track", "user_id": "u3"}])
    result = stitch(con)
    assert result.identity == "resolved"
    # the alias now links u1 to the user u3, and no anonymous id u3 is left
    assert con.execute("SELECT * FROM identity_map ORDER BY ALL").fetchall() == [
        ("user_id", "u1", "u:u1"), ("user_id", "u3", "u:u1")]


def test_a_failed_incremental_stitch_leaves_the_old_tables(tmp_path, monkeypatch):
    con = open_store(tmp_path)
    insert(con, [{"type": "identify", "user_id": "u1", "anonymous_id": "a1"}])
    stitch(con)
    before = snapshot(con)
    insert(con, [{"type": "identify", "user_id": "u2", "anonymous_id": "a1"}])

    def broken(*args, **kwargs):
        raise duckdb.IOException("disk full")

    monkeypatch.setattr(stitch_module, "build_accounts", broken)
    try:
        stitch(con)
    except duckdb.IOException:
        pass
    else:
        raise AssertionError("the stitch did not fail")
    assert snapshot(con) == before
    monkeypatch.undo()
    assert stitch(con).identity == "updated"
