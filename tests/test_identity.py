"""Identity stitching: identity_map, persons, accounts and journey_events, against a real store file."""

from __future__ import annotations

import importlib
import itertools
import json
from datetime import datetime, timedelta

import networkx as nx
import numpy as np
import pyarrow as pa
import duckdb
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import journeymap.identity as identity
from journeymap.events.schema import EVENTS_SCHEMA, PLACEHOLDER_IDS
from journeymap.identity import NotStitched, person_of, stitch
from journeymap.ingest.store import open_store

activity = importlib.import_module("journeymap.identity.activity")
components = importlib.import_module("journeymap.identity.components")
stitch_module = importlib.import_module("journeymap.identity.stitch")

T0 = datetime(2025, 3, 1, 9, 0)


def insert(con, rows: list[dict]) -> None:
    """Insert events given as partial dicts; seq continues from what the store holds."""
    start = con.execute("SELECT coalesce(max(seq) + 1, 0) FROM events").fetchall()[0][0]
    full = []
    for i, row in enumerate(rows):
        seq = start + i
        full.append({
            "message_id": f"m{seq}", "ts": T0 + timedelta(minutes=seq), "event": row.get("type", "track"),
            "type": "track", "source": "product", "seq": seq, **row,
        })
    table = pa.Table.from_pylist(full, schema=EVENTS_SCHEMA)
    con.register("new_events", table)
    con.execute("INSERT INTO events BY NAME SELECT * FROM new_events")
    con.unregister("new_events")


def rows(con, sql: str, *params) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def persons_of(con) -> set[frozenset]:
    """The partition identity_map makes of the identifiers."""
    groups: dict[str, set] = {}
    for id_type, id_value, person_id in rows(con, "SELECT id_type, id_value, person_id FROM identity_map"):
        groups.setdefault(person_id, set()).add((id_type, id_value))
    return {frozenset(group) for group in groups.values()}


# --- the independent oracle: networkx over the raw rows ---------------------------------------------

def clean(value: str | None, lower: bool = False) -> str | None:
    if value is None:
        return None
    value = value.strip(" \t\n\r\x0b\x0c")
    if value.lower() in PLACEHOLDER_IDS:
        return None
    return value.lower() if lower else value


def oracle_components(events: list[dict]) -> set[frozenset]:
    graph = nx.Graph()
    own = []
    for event in events:
        ids = []
        if (u := clean(event.get("user_id"))) is not None:
            ids.append(("user_id", u))
        if (e := clean(event.get("email"), lower=True)) is not None:
            ids.append(("email", e))
        if (a := clean(event.get("anonymous_id"))) is not None:
            ids.append(("anonymous_id", a))
        own.append(ids)
        graph.add_nodes_from(ids)
    seen = set(graph.nodes)
    for event, ids in zip(events, own):
        previous = clean(event.get("previous_id")) if event.get("type") == "alias" else None
        if previous is not None:
            named = [node for node in (("user_id", previous), ("anonymous_id", previous)) if node in seen]
            ids = ids + (named or [("anonymous_id", previous)])
            graph.add_nodes_from(ids)
        graph.add_edges_from(zip(ids, ids[1:]))
    return {frozenset(component) for component in nx.connected_components(graph)}


RANK = {"user_id": 0, "email": 1, "anonymous_id": 2}
PREFIX = {"user_id": "u:", "email": "e:", "anonymous_id": "a:"}

placeholder = st.sampled_from(["guest", " Undefined ", "", "0", "null", "anonymous", "NaN"])
# Small overlapping pools, so that random events share identifiers often: "a1" and "u2" are both a
# user_id and an anonymous_id somewhere, previous_id names users, anonymous ids and strangers ("a5").
user_ids = st.one_of(st.none(), st.sampled_from(["u1", "u2", "u3", " u1", "a1"]), placeholder)
anon_ids = st.one_of(st.none(), st.sampled_from(["a1", "a2", "a3", "u2"]), placeholder)
emails = st.one_of(st.none(), st.sampled_from(["ann@x.io", " ANN@x.io", "bob@x.io", "Cy@x.io\t"]), placeholder)
previous_ids = st.one_of(st.sampled_from(["a1", "a5", "u3", "u2"]), placeholder)
random_event = st.fixed_dictionaries({
    "type": st.sampled_from(["track", "identify", "alias", "alias", "page", "group"]),
    "user_id": user_ids, "anonymous_id": anon_ids, "email": emails, "previous_id": previous_ids,
    "account_id": st.sampled_from([None, "acme", "globex", "null"]),
})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(random_event, max_size=25))
@example(events=[  # previous_id naming a user_id, not an anonymous_id
    {"type": "alias", "previous_id": "u3", "user_id": "u1"},
    {"type": "track", "user_id": "u3"},
])
def test_persons_are_the_connected_components_of_the_identifier_graph(tmp_path_factory, events):
    con = open_store(tmp_path_factory.mktemp("graph"))
    insert(con, events)
    result = stitch(con)

    expected = oracle_components(events)
    assert persons_of(con) == expected
    assert result.persons == len(expected)
    assert result.identifiers == sum(len(component) for component in expected)
    assert result.largest_component == max((len(c) for c in expected), default=0)
    # each person is named after their most trusted identifier
    for id_type, id_value, person_id in rows(con, "SELECT id_type, id_value, person_id FROM identity_map"):
        component = next(c for c in expected if (id_type, id_value) in c)
        best_type, best_value = min(component, key=lambda node: (RANK[node[0]], node[1]))
        assert person_id == PREFIX[best_type] + best_value
    # every event keeps its row; an event naming somebody gets their person
    assert rows(con, "SELECT count(*) FROM journey_events") == [(len(events),)]
    con.close()


def test_placeholders_never_merge_anybody(tmp_path):
    con = open_store(tmp_path)
    placeholders = ["guest", "undefined", "", "0", "null", "anonymous", " GUEST ", "Null\t"]
    events = []
    for n, value in enumerate(placeholders):
        # every id field holds the placeholder, next to one real identifier of a different person
        events += [
            {"type": "identify", "user_id": f"u{n}", "anonymous_id": value, "email": value},
            {"type": "track", "user_id": value, "anonymous_id": f"a{n}", "email": value},
            {"type": "identify", "user_id": value, "anonymous_id": value, "email": f"p{n}@x.io"},
            {"type": "alias", "user_id": f"v{n}", "previous_id": value, "anonymous_id": value},
            {"type": "track", "user_id": value, "anonymous_id": value, "email": value, "account_id": value},
        ]
    insert(con, events)
    result = stitch(con)

    assert result.merged_components == 0
    assert result.persons == result.identifiers == 4 * len(placeholders)
    assert rows(con, "SELECT count(*) FROM identity_map WHERE lower(trim(id_value)) IN ('guest', 'undefined', "
                     "'', '0', 'null', 'anonymous')") == [(0,)]
    # events naming nobody (placeholders only) have no person and no account
    assert rows(con, "SELECT count(*) FROM journey_events WHERE person_id IS NULL AND account_id IS NULL") == [
        (len(placeholders),)
    ]
    assert person_of(con, "anonymous_id", "guest") is None
    assert person_of(con, "email", " NULL ") is None


@pytest.fixture
def story(tmp_path):
    """A small hand-made history: Ann (anonymous, then identified, two devices, an alias), Bob, Cy and
    a billing system that only knows accounts."""
    con = open_store(tmp_path)
    insert(con, [
        {"type": "page", "anonymous_id": "a3"},                                               # 0 Ann's phone
        {"type": "page", "anonymous_id": "a1"},                                               # 1 Ann's laptop
        {"type": "page", "anonymous_id": "a1"},                                               # 2
        {"type": "identify", "anonymous_id": "a1", "user_id": "ann", "email": " Ann@X.io ",
         "traits": json.dumps({"plan": "free", "name": "Ann", "tags": ["a"]})},               # 3
        {"type": "track", "user_id": "ann", "account_id": "acme"},                            # 4
        {"type": "identify", "user_id": "ann", "traits": json.dumps({"plan": "pro", "name": None})},  # 5
        {"type": "track", "anonymous_id": "a2", "user_id": "ann"},                            # 6 a new device
        {"type": "alias", "previous_id": "a3", "user_id": "ann"},                             # 7
        {"type": "group", "user_id": "ann", "account_id": "acme",
         "traits": json.dumps({"industry": "saas", "size": 10})},                             # 8
        {"type": "group", "user_id": "ann", "account_id": "acme",
         "traits": json.dumps({"size": 12, "industry": None})},                               # 9
        {"type": "track", "source": "billing", "account_id": "acme"},                         # 10 billing
        {"type": "track", "user_id": "bob", "email": "bob@y.io", "account_id": "globex"},     # 11
        {"type": "track", "user_id": "bob", "account_id": "globex"},                          # 12
        {"type": "track", "user_id": "bob", "account_id": "acme"},                            # 13
        {"type": "track", "user_id": "cy", "account_id": "acme"},                             # 14 a tie for Cy:
        {"type": "track", "user_id": "cy", "account_id": "globex"},                           # 15 globex is later
        {"type": "track", "email": "dee@z.io"},                                               # 16 email only
        {"type": "page", "anonymous_id": "a9"},                                               # 17 never identified
        {"type": "track", "source": "billing", "account_id": "initech"},                      # 18 no persons
    ])
    yield con
    con.close()


def test_journey_events_resolve_persons_and_accounts(story):
    result = stitch(story)
    assert result.events == 19 and result.unresolved_events == 2
    got = rows(story, "SELECT seq, person_id, account_id FROM journey_events ORDER BY seq")
    assert got == [
        (0, "u:ann", "acme"), (1, "u:ann", "acme"), (2, "u:ann", "acme"), (3, "u:ann", "acme"),
        (4, "u:ann", "acme"), (5, "u:ann", "acme"), (6, "u:ann", "acme"), (7, "u:ann", "acme"),
        (8, "u:ann", "acme"), (9, "u:ann", "acme"), (10, None, "acme"),
        (11, "u:bob", "globex"), (12, "u:bob", "globex"), (13, "u:bob", "acme"),  # its own account wins
        (14, "u:cy", "acme"), (15, "u:cy", "globex"),
        (16, "e:dee@z.io", None), (17, "a:a9", None), (18, None, "initech"),
    ]
    # every events column is kept
    events_columns = [r[0] for r in rows(story, "DESCRIBE events")]
    assert [r[0] for r in rows(story, "DESCRIBE journey_events")] == events_columns + ["person_id"]


def test_persons_table(story):
    stitch(story)
    persons = {r[0]: r for r in rows(story, "SELECT * FROM persons ORDER BY person_id")}
    assert set(persons) == {"u:ann", "u:bob", "u:cy", "e:dee@z.io", "a:a9"}
    ann = persons["u:ann"]
    assert ann[1:7] == ("acme", T0, T0 + timedelta(minutes=9), 10, ["ann"], ["ann@x.io"])
    # latest non-null value per key across identify calls: the null name does not erase "Ann"
    assert json.loads(ann[7]) == {"plan": "pro", "name": "Ann", "tags": ["a"]}
    assert persons["u:bob"][1] == "globex"
    assert persons["u:cy"][1] == "globex"  # one event each: the most recent account wins
    assert persons["a:a9"][1:] == (None, T0 + timedelta(minutes=17), T0 + timedelta(minutes=17), 1, [], [], "{}", None)  # no createdAt trait
    assert sorted(rows(story, "SELECT id_type, id_value FROM identity_map WHERE person_id = 'u:ann'")) == [
        ("anonymous_id", "a1"), ("anonymous_id", "a2"), ("anonymous_id", "a3"),
        ("email", "ann@x.io"), ("user_id", "ann"),
    ]


def test_accounts_table(story):
    stitch(story)
    accounts = {r[0]: r for r in rows(story, "SELECT * FROM accounts")}
    assert set(accounts) == {"acme", "globex", "initech"}
    acme = accounts["acme"]
    # Ann's 10 events, billing, Bob's and Cy's own acme events; persons with events counted there
    assert acme[1:5] == (T0, T0 + timedelta(minutes=14), 3, 13)
    assert json.loads(acme[5]) == {"industry": "saas", "size": 12}
    assert accounts["initech"][3:] == (0, 1, "{}", None)
    assert accounts["globex"][3:5] == (2, 3)


@pytest.mark.parametrize("traits, created", [
    ({"createdAt": "2024-03-01T10:00:00Z"}, datetime(2024, 3, 1, 10)),
    ({"createdAt": "2024-03-01T10:00:00+02:00"}, datetime(2024, 3, 1, 8)),  # stored as UTC
    ({"createdAt": "2024-03-01"}, datetime(2024, 3, 1)),  # no offset: UTC
    ({"created_at": "2024-03-01 10:00:00"}, datetime(2024, 3, 1, 10)),
    ({"createdAt": 1709287200}, datetime(2024, 3, 1, 10)),  # unix seconds
    ({"createdAt": 1709287200000}, datetime(2024, 3, 1, 10)),  # unix milliseconds
    ({"createdAt": "last tuesday"}, None),  # unreadable: lifecycle falls back to first_seen
    ({"plan": "pro"}, None),
])
def test_created_at_trait(traits, created):
    from journeymap.identity.profiles import created_at_sql

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    (got,) = con.execute(f"SELECT {created_at_sql('t')} FROM (SELECT ?::VARCHAR AS t)", [json.dumps(traits)]).fetchall()[0]
    assert got == created


def test_person_of(story, tmp_path_factory):
    with pytest.raises(NotStitched):
        person_of(story, "user_id", "ann")
    stitch(story)
    assert person_of(story, "email", " ANN@x.io") == "u:ann"
    assert person_of(story, "anonymous_id", "a3") == "u:ann"
    assert person_of(story, "user_id", "nobody") is None
    assert person_of(story, "anonymous_id", "guest") is None
    with pytest.raises(ValueError, match="id_type"):
        person_of(story, "phone", "123")


def test_person_ids_are_stable(story):
    stitch(story)
    first = rows(story, "SELECT * FROM identity_map ORDER BY ALL")
    persons = rows(story, "SELECT * FROM persons ORDER BY ALL")
    stitch(story)
    assert rows(story, "SELECT * FROM identity_map ORDER BY ALL") == first
    assert rows(story, "SELECT * FROM persons ORDER BY ALL") == persons

    # unrelated people arrive (one of them sorts before everybody): nobody else is renamed
    insert(story, [
        {"type": "identify", "anonymous_id": "a0", "user_id": "aaron", "email": "a@a.io"},
        {"type": "track", "anonymous_id": "zz"},
    ])
    stitch(story)
    after = set(rows(story, "SELECT * FROM identity_map"))
    assert set(first) <= after
    assert person_of(story, "anonymous_id", "a0") == "u:aaron"


def test_rebuild_is_one_transaction(story, monkeypatch):
    stitch(story)
    before = rows(story, "SELECT * FROM identity_map ORDER BY ALL")
    insert(story, [{"type": "identify", "anonymous_id": "a9", "user_id": "nina"}])

    def fail(con, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(stitch_module, "build_accounts", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        stitch(story)
    assert rows(story, "SELECT * FROM identity_map ORDER BY ALL") == before
    assert rows(story, "SELECT count(*) FROM duckdb_tables() WHERE temporary") == [(0,)]


def test_a_key_collision_is_retried_with_another_salt(story, monkeypatch):
    stitch(story)
    expected = rows(story, "SELECT * FROM journey_events ORDER BY seq")
    answers = itertools.chain([False], itertools.repeat(True))
    real = activity._keys_unique
    monkeypatch.setattr(activity, "_keys_unique", lambda con, new=False: real(con, new) and next(answers))
    # the second stitch's check of its (no) new keys says they collide: every key is made with salt 1, and
    # what the keys join is resolved and written again with them
    result = stitch(story)
    assert (result.identity, result.journey_events) == ("resolved", "rebuilt")
    assert rows(story, "SELECT value FROM meta WHERE key = 'identity.salt'") == [("1",)]
    assert rows(story, "SELECT * FROM journey_events ORDER BY seq") == expected
    # the next stitch keeps salt 1, and checks only the new keys again
    assert stitch(story).identity == "updated"
    assert rows(story, "SELECT * FROM journey_events ORDER BY seq") == expected


@pytest.mark.parametrize("key", ["activity_key", "tuple_key"])
def test_a_new_key_that_a_kept_row_already_has_is_a_collision(story, key, tmp_path):
    """The incremental check compares the new rows' keys with the kept ones (no monkeypatch: a kept row is given
    the key the new row will get, as a hash collision would)."""
    stitch(story)
    insert(story, [{"type": "track", "anonymous_id": "brand-new"}])
    # the key the new event's row will get (salt 0), given to a kept row of other values
    hashed = (activity.activity_key_sql if key == "activity_key" else activity.tuple_key_sql)("e", 0)
    (new_key,) = rows(story, f"SELECT {hashed} FROM events e WHERE anonymous_id = 'brand-new'")[0]
    story.execute(f"UPDATE identity_activity SET {key} = ? WHERE anonymous_id = 'a3' AND user_id IS NULL", [new_key])
    result = stitch(story)
    assert result.identity == "resolved"  # every key made again with salt 1, and everything resolved with them
    assert rows(story, "SELECT value FROM meta WHERE key = 'identity.salt'") == [("1",)]
    (tmp_path / "fresh").mkdir()
    fresh = open_store(tmp_path / "fresh")
    fresh.register("_copy", story.sql("SELECT * FROM events ORDER BY seq").to_arrow_table())
    fresh.execute("INSERT INTO events SELECT * FROM _copy")
    stitch(fresh)
    for sql in ("SELECT * FROM persons ORDER BY ALL", "SELECT * FROM identity_map ORDER BY ALL",
                "SELECT seq, person_id, account_id FROM journey_events ORDER BY seq"):
        assert rows(story, sql) == rows(fresh, sql)


def test_empty_store(tmp_path):
    con = open_store(tmp_path)
    result = stitch(con)
    assert (result.persons, result.identifiers, result.events, result.largest_person_id) == (0, 0, 0, None)
    assert rows(con, "SELECT count(*) FROM journey_events") == [(0,)]


def test_largest_component_is_reported(tmp_path):
    con = open_store(tmp_path)
    # a shared office email glues five users together: stitching does it, and says so
    insert(con, [{"type": "identify", "user_id": f"u{n}", "email": "office@acme.io"} for n in range(5)])
    result = stitch(con)
    assert (result.persons, result.largest_component, result.largest_person_id) == (1, 6, "u:u0")


@settings(max_examples=200, deadline=None)
@given(count=st.integers(1, 40), links=st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), max_size=60))
def test_union_find_matches_networkx(count, links):
    links = [(a % count, b % count) for a, b in links]
    left = np.array([a for a, _ in links], dtype=np.int64)
    right = np.array([b for _, b in links], dtype=np.int64)
    roots = components.components(count, left, right)
    graph = nx.Graph()
    graph.add_nodes_from(range(count))
    graph.add_edges_from(links)
    for component in nx.connected_components(graph):
        assert {int(roots[node]) for node in component} == {min(component)}


def test_public_api():
    assert identity.__all__ == ["NotStitched", "StitchResult", "person_of", "stitch"]


def test_the_worked_example_in_docs_identity_md(tmp_path):
    con = open_store(tmp_path)
    insert(con, [
        {"type": "page", "anonymous_id": "a3"},
        {"type": "page", "anonymous_id": "a1"},
        {"type": "identify", "user_id": "ann", "anonymous_id": "a1", "email": " Ann@X.io ",
         "traits": '{"plan": "free", "name": "Ann"}'},
        {"type": "track", "user_id": "ann", "account_id": "acme"},
        {"type": "identify", "user_id": "ann", "traits": '{"plan": "pro", "name": null}'},
        {"type": "alias", "user_id": "ann", "previous_id": "a3"},
        {"type": "track", "anonymous_id": "a2"},
        {"type": "group", "user_id": "ann", "account_id": "acme", "traits": '{"industry": "saas"}'},
        {"type": "track", "source": "billing", "account_id": "acme"},
        {"type": "track", "user_id": "guest", "anonymous_id": "guest", "email": "null"},
    ])
    result = stitch(con)
    assert (result.persons, result.identifiers, result.merged_components, result.unresolved_events) == (2, 5, 1, 2)
    assert rows(con, "SELECT * FROM identity_map ORDER BY ALL") == [
        ("anonymous_id", "a1", "u:ann"), ("anonymous_id", "a2", "a:a2"), ("anonymous_id", "a3", "u:ann"),
        ("email", "ann@x.io", "u:ann"), ("user_id", "ann", "u:ann"),
    ]
    assert rows(con, "SELECT person_id, account_id, events, user_ids, emails, traits FROM persons") == [
        ("a:a2", None, 1, [], [], "{}"),
        ("u:ann", "acme", 7, ["ann"], ["ann@x.io"], '{"name":"Ann","plan":"pro"}'),
    ]
    assert rows(con, "SELECT seq, person_id, account_id FROM journey_events ORDER BY seq") == [
        (0, "u:ann", "acme"), (1, "u:ann", "acme"), (2, "u:ann", "acme"), (3, "u:ann", "acme"),
        (4, "u:ann", "acme"), (5, "u:ann", "acme"), (6, "a:a2", None), (7, "u:ann", "acme"),
        (8, None, "acme"), (9, None, None),
    ]
    assert rows(con, "SELECT account_id, persons, events, traits FROM accounts") == [
        ("acme", 1, 8, '{"industry":"saas"}'),
    ]


def test_traits_that_are_not_json_objects_are_skipped(tmp_path):
    con = open_store(tmp_path)
    insert(con, [
        {"type": "identify", "user_id": "ann", "traits": '{"plan": "free", "say \\"hi\\"": 1}'},
        {"type": "identify", "user_id": "ann", "traits": "not json"},
        {"type": "identify", "user_id": "ann", "traits": "[1, 2]"},
        {"type": "group", "user_id": "ann", "account_id": "acme", "traits": "{broken"},
    ])
    stitch(con)
    assert json.loads(rows(con, "SELECT traits FROM persons")[0][0]) == {"plan": "free", 'say "hi"': 1}
    assert rows(con, "SELECT traits FROM accounts") == [("{}",)]
