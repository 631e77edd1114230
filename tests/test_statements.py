"""engine.statements: a statement kept per process never changes an answer. Two stores with the same columns and
other events each get their own cohorts from one entry, a table written with other columns gets another entry,
and with the cache off every statement is built again with the same answers (retention is its user)."""

from __future__ import annotations

import pytest

from cohort_data import at, write_workspace
from journeymap.engine import statements
from journeymap.engine.retention import parse_brackets, retention
from test_retention import reference

FIRST = [("u1", at(1), "signup"), ("u1", at(3), "use"), ("u1", at(9), "use"), ("u2", at(2), "signup"),
         ("u2", at(10), "use"), ("u3", at(5), "signup")]
SECOND = [("u1", at(1), "signup"), ("u2", at(8), "signup"), ("u2", at(9), "use"), ("u2", at(30), "use"),
          ("u3", at(15), "signup"), ("u3", at(15), "use"), ("u4", at(16), "signup")]
OPTIONS = [dict(interval="week"), dict(interval="week", date_from="2024-01-08"), dict(interval="week", level="account"),
           dict(interval="day", mode="recurring", period="on_or_after"),
           dict(interval="week", brackets="0-0,1-3,4-30", date_from="2024-01-02")]
"""Each differs from the one before in one option or more: each is its own entry."""


@pytest.fixture()
def stores(tmp_path):
    statements.clear()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = write_workspace(tmp_path / "a", FIRST), write_workspace(tmp_path / "b", SECOND)
    yield first, second
    first.close()
    second.close()
    statements.clear()


def _cohorts(got):
    return [(c["start"], c["size"], c["values"]) for c in got["cohorts"]]


def _want(rows, options):
    o = {"mode": "first_time", "period": "on", "brackets": None, "date_from": None, "level": "person", **options}
    return reference(rows, "signup", "use", o["interval"], o["mode"], o["period"], False, parse_brackets(o["brackets"]),
                     o["level"], date_from=o["date_from"])


def test_two_stores_read_their_own_events_through_one_entry(stores):
    first, second = stores
    for options in OPTIONS:
        misses = statements.stats["misses"]
        got_first = retention(first.engine, "signup", "use", **options)
        assert statements.stats["misses"] == misses + 1  # built once for these options
        hits = statements.stats["hits"]
        got_second = retention(second.engine, "signup", "use", **options)
        assert statements.stats["hits"] == hits + 1 and statements.stats["misses"] == misses + 1
        assert _cohorts(got_first) == _want(FIRST, options) and _cohorts(got_second) == _want(SECOND, options)
        assert _cohorts(got_first) != _cohorts(got_second)


def test_a_table_with_other_columns_gets_its_own_entry(stores):
    first, _ = stores
    before = retention(first.engine, "signup", "use", interval="week")
    first.con.execute("ALTER TABLE journey_events ADD COLUMN note VARCHAR")
    misses = statements.stats["misses"]
    assert retention(first.engine, "signup", "use", interval="week") == before
    assert statements.stats["misses"] == misses + 1 and len(statements._entries) == 2


def test_off_builds_every_statement_with_the_same_answers(stores, monkeypatch):
    first, second = stores
    cached = [retention(ws.engine, "signup", "use", **o) for ws in stores for o in OPTIONS]
    monkeypatch.setattr(statements, "SIZE", 0)
    statements.clear()
    assert [retention(ws.engine, "signup", "use", **o) for ws in (first, second) for o in OPTIONS] == cached
    assert statements.stats == {"hits": 0, "misses": 0} and not statements._entries


def test_the_latest_entries_are_kept(stores, monkeypatch):
    first, _ = stores
    monkeypatch.setattr(statements, "SIZE", 2)
    for options in OPTIONS:
        retention(first.engine, "signup", "use", **options)
    assert len(statements._entries) == 2
    retention(first.engine, "signup", "use", **OPTIONS[0])  # dropped: the least recently used
    assert statements.stats["misses"] == len(OPTIONS) + 1
