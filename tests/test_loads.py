"""The load log and undoing loads: `journeymap loads`, `journeymap unload`, `ingest --replace`, on a real DuckDB file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import invoke_cli, invoke_json
from journeymap.ingest.store import open_store
from journeymap.workspace import IngestFailed, Workspace

MAPPING = """
sources:
  leads:
    source: crm
    fields:
      user_id: lead_id
      event: {column: stage, map: {MQL: mql_created, SQL: sql_created}}
      ts: created
"""
LEADS = ["lead_id,stage,created", "l1,MQL,2024-01-01T10:00:00Z", "l2,MQL,2024-01-02T10:00:00Z",
         "l3,SQL,2024-01-03T10:00:00Z", "l4,Lead,2024-01-04T10:00:00Z"]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def acme(tmp_path) -> Path:
    """A workspace from `journeymap init` with a `leads` mapping, and a leads export beside it whose `Lead` stage the
    mapping does not know yet (so its row keeps the raw value, and rejects nothing)."""
    ws = tmp_path / "acme"
    invoke_cli("init", str(ws))
    with open(ws / "journeymap.yml", "a", encoding="utf-8") as f:
        f.write(MAPPING)
    _write(tmp_path / "leads.csv", LEADS)
    return ws


def _fix_mapping(ws: Path) -> None:
    """The user fixes the mapping: `Lead` now means lead_created."""
    yml = ws / "journeymap.yml"
    yml.write_text(yml.read_text().replace("SQL: sql_created}", "SQL: sql_created, Lead: lead_created}"))


def _events(ws: Path) -> list[tuple]:
    with Workspace(ws) as w:
        return w.con.execute("SELECT user_id, event FROM events ORDER BY user_id, event").fetchall()


def _table(ws: Path, sql: str) -> list[tuple]:
    with Workspace(ws) as w:
        return w.con.execute(sql).fetchall()


# -- journeymap loads --------------------------------------------------------------------------------------------


def test_loads_lists_every_load_with_its_mapping_hash(acme, tmp_path):
    canonical = _write(tmp_path / "events.csv", ["customer_id,event,ts", "ann,signup,2024-01-01T09:00:00Z",
                                                 "bob,signup,not a time"])
    invoke_cli("ingest", str(canonical), "-w", str(acme))
    invoke_cli("ingest", str(tmp_path / "leads.csv"), "--source", "leads", "-w", str(acme))
    loads = invoke_json("loads", "-w", str(acme))["loads"]
    assert [(d["load_id"], d["file"], d["source"], d["rows_read"], d["accepted"], d["duplicate"], d["rejected"],
             d["status"]) for d in loads] == [
        (1, str(canonical), None, 2, 1, 0, 1, "completed"),
        (2, str(tmp_path / "leads.csv"), "leads", 4, 4, 0, 0, "completed"),
    ]
    assert loads[0]["mapping_hash"] is None  # a canonical file goes through no mapping
    assert re.fullmatch(r"[0-9a-f]{12}", loads[1]["mapping_hash"])
    assert loads[1]["mapping_changed"] is False and loads[1]["started_at"] and loads[1]["finished_at"]

    table = invoke_cli("loads", "-w", str(acme)).stdout
    for column in ("load", "file", "source", "mapping", "rows", "accepted", "duplicate", "rejected", "status", "when"):
        assert column in table
    assert loads[1]["mapping_hash"] in table and "completed" in table

    # The same mapping hashes the same; a changed one differently, and the list says the old load used the old one.
    invoke_cli("ingest", str(tmp_path / "leads.csv"), "--source", "leads", "-w", str(acme))
    _fix_mapping(acme)
    with Workspace(acme) as ws:
        again = ws.loads()
    assert again[2]["mapping_hash"] == loads[1]["mapping_hash"]
    assert [d["mapping_changed"] for d in again] == [None, True, True]
    assert "--replace" in invoke_cli("loads", "-w", str(acme)).stdout


OLD_LOADS = """
CREATE TABLE loads (load_id BIGINT PRIMARY KEY, source_name VARCHAR, file VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP, rows_read BIGINT DEFAULT 0, accepted BIGINT DEFAULT 0,
    duplicate BIGINT DEFAULT 0, rejected BIGINT DEFAULT 0, status VARCHAR NOT NULL);
CREATE SEQUENCE load_ids START 2;
INSERT INTO loads VALUES (1, 'crm', 'old.csv', '2024-05-01 10:00:00', '2024-05-01 10:00:01', 5, 5, 0, 0, 'completed');
"""


def test_a_store_made_before_mapping_hashes_gets_the_column(tmp_path):
    import duckdb

    ws = tmp_path / "old"
    ws.mkdir()
    con = duckdb.connect(str(ws / "journeymap.duckdb"))
    con.execute(OLD_LOADS)
    con.close()
    (old,) = invoke_json("loads", "-w", str(ws))["loads"]
    assert (old["load_id"], old["file"], old["mapping_hash"], old["status"]) == (1, "old.csv", None, "completed")
    con = open_store(ws)
    columns = {r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'loads'").fetchall()}
    con.close()
    assert {"mapping_hash", "unloaded_at", "replaced_by"} <= columns


# -- journeymap unload ------------------------------------------------------------------------------------------


def test_unload_removes_a_loads_events_and_dead_letters_and_rebuilds_the_journey(acme, tmp_path):
    first = _write(tmp_path / "first.csv", ["customer_id,event,ts", "ann,signup,2024-01-01T09:00:00Z",
                                            "ann,login,2024-01-02T09:00:00Z", "ann,login,yesterday"])
    second = _write(tmp_path / "second.csv", ["customer_id,event,ts", "bob,signup,2024-02-01T09:00:00Z"])
    invoke_cli("ingest", str(first), "-w", str(acme))
    invoke_cli("ingest", str(second), "-w", str(acme))
    assert _table(acme, "SELECT count(*) FROM persons") == [(2,)]

    removed = invoke_json("unload", "1", "-w", str(acme))
    assert {k: removed[k] for k in ("load_id", "file", "events", "dead_letters")} == {
        "load_id": 1, "file": str(first), "events": 2, "dead_letters": 1}
    assert _events(acme) == [("bob", "signup")]
    assert _table(acme, "SELECT count(*) FROM dead_letters") == [(0,)]
    # identity and the journey tables are rebuilt from what is left
    assert _table(acme, "SELECT person_id FROM persons") == [("u:bob",)]
    assert _table(acme, "SELECT count(*) FROM journey_events") == [(1,)]
    assert invoke_json("transitions", "-w", str(acme), "--level", "event")["starts"] == {"signup": 1}
    loads = invoke_json("loads", "-w", str(acme))["loads"]
    assert [d["status"] for d in loads] == ["unloaded", "completed"]
    assert loads[0]["unloaded_at"] and loads[0]["replaced_by"] is None

    # Unloading the last one leaves an empty, working workspace; the table output says what went.
    out = invoke_cli("unload", "2", "-w", str(acme)).stdout
    assert "unloaded load 2" in out and "removed 1 events and 0 dead letters" in out
    assert _events(acme) == [] and _table(acme, "SELECT count(*) FROM persons") == [(0,)]


def test_an_unknown_or_unloaded_load_is_a_clear_error(acme, tmp_path):
    invoke_cli("ingest", str(tmp_path / "leads.csv"), "--source", "leads", "-w", str(acme))
    unknown = invoke_cli("unload", "7", "-w", str(acme), check=False)
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert "no load 7 (loads are 1)" in unknown.stderr and f"journeymap loads --workspace {acme}" in unknown.stderr
    invoke_cli("unload", "1", "-w", str(acme))
    twice = invoke_cli("unload", "1", "-w", str(acme), check=False)
    assert twice.returncode == 1 and "load 1 (" in twice.stderr and "was already unloaded at" in twice.stderr
    empty = tmp_path / "empty"
    invoke_cli("init", str(empty))
    none = invoke_cli("unload", "1", "-w", str(empty), check=False)
    assert none.returncode == 1 and "no load 1 (there are no loads yet)" in none.stderr


def test_unload_takes_rows_a_later_load_counted_as_duplicates_and_names_it(acme, tmp_path):
    """A row is stored once: the later file's identical row was a duplicate of the first load's, so it leaves with
    that load. The report names the later load; re-ingesting its file brings the row back."""
    shared = "ann,signup,2024-01-01T09:00:00Z"
    first = _write(tmp_path / "first.csv", ["customer_id,event,ts", shared, "ann,login,2024-01-02T09:00:00Z"])
    later = _write(tmp_path / "later.csv", ["customer_id,event,ts", shared, "bob,signup,2024-02-01T09:00:00Z"])
    invoke_cli("ingest", str(first), "-w", str(acme))
    invoke_cli("ingest", str(later), "-w", str(acme))
    removed = invoke_json("unload", "1", "-w", str(acme))
    assert removed["later"] == [{"load_id": 2, "file": str(later), "source": None, "duplicate": 1, "rejected": 0}]
    assert _events(acme) == [("bob", "signup")]  # ann's signup, shared with later.csv, went with load 1
    invoke_cli("ingest", str(later), "-w", str(acme))
    assert _events(acme) == [("ann", "signup"), ("bob", "signup")]

    invoke_cli("ingest", str(first), "-w", str(acme))  # load 4: ann's signup is now load 3's
    out = invoke_cli("unload", "3", "-w", str(acme)).stdout
    assert "load 4" in out and f"journeymap ingest {first} --workspace {acme}" in out


# -- ingest --replace -------------------------------------------------------------------------------------------


def test_replace_after_fixing_a_mapping_does_not_double_the_data(acme, tmp_path):
    leads = tmp_path / "leads.csv"
    invoke_cli("ingest", str(leads), "--source", "leads", "-w", str(acme))
    assert ("l4", "Lead") in _events(acme)
    _fix_mapping(acme)

    result = invoke_json("ingest", str(leads), "--source", "leads", "--replace", "-w", str(acme))
    assert result["accepted"] == 4 and result["duplicate"] == 0
    assert result["files"][0]["replaced"] == [
        {"load_id": 1, "file": str(leads), "source": "leads", "events": 4, "dead_letters": 0}]
    assert _events(acme) == [("l1", "mql_created"), ("l2", "mql_created"), ("l3", "sql_created"),
                             ("l4", "lead_created")]  # each lead once, through the fixed mapping
    assert _table(acme, "SELECT count(*) FROM journey_events") == [(4,)]
    loads = invoke_json("loads", "-w", str(acme))["loads"]
    assert [(d["load_id"], d["status"], d["replaced_by"], d["mapping_changed"]) for d in loads] == [
        (1, "unloaded", 2, True), (2, "completed", None, False)]

    # Replacing again with nothing changed gives the same events; without --replace the run adds nothing.
    with Workspace(acme) as ws:
        (report,) = ws.ingest([str(leads)], source="leads", replace=True)
    assert (report.accepted, [r["load_id"] for r in report.replaced]) == (4, [2])
    assert len(_events(acme)) == 4
    shown = invoke_cli("ingest", str(leads), "--source", "leads", "--replace", "-w", str(acme)).stdout
    assert f"replaced load 3 of {leads}: 4 events and 0 dead letters removed" in " ".join(shown.split())


def test_replace_drops_the_old_dead_letters(acme, tmp_path):
    bad = _write(tmp_path / "leads.csv", [*LEADS, "l5,MQL,someday"])
    invoke_cli("ingest", str(bad), "--source", "leads", "-w", str(acme))
    assert _table(acme, "SELECT load_id, row_number FROM dead_letters") == [(1, 6)]  # line 6 of the file
    _write(bad, LEADS)  # the export is fixed at its source
    invoke_cli("ingest", str(bad), "--source", "leads", "--replace", "-w", str(acme))
    assert _table(acme, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert invoke_json("rejects", "-w", str(acme))["total"] == 0


def test_replace_touches_only_the_same_file_and_source(acme, tmp_path):
    leads = tmp_path / "leads.csv"
    other = _write(tmp_path / "other.csv", ["customer_id,event,ts", "zed,signup,2024-03-01T09:00:00Z"])
    invoke_cli("ingest", str(leads), "--source", "leads", "-w", str(acme))
    invoke_cli("ingest", str(other), "-w", str(acme))
    invoke_cli("ingest", str(other), "--source", "crm", "-w", str(acme))  # the same file as another source
    with Workspace(acme) as ws:
        (report,) = ws.ingest([str(other)], replace=True)
        statuses = [d["status"] for d in ws.loads()]
    assert [r["load_id"] for r in report.replaced] == [2]
    assert statuses == ["completed", "unloaded", "completed", "completed"]
    assert _table(acme, "SELECT source, count(*) FROM events WHERE user_id = 'zed' GROUP BY ALL ORDER BY 1") == [
        ("crm", 1), ("other", 1)]  # once as crm (load 3), once as the canonical default (load 4 replaced load 2)


def test_a_failed_replacing_load_keeps_the_earlier_one(acme, tmp_path):
    """The earlier load is removed in the new load's transaction: when the new load fails, both roll back."""
    leads = tmp_path / "leads.csv"
    invoke_cli("ingest", str(leads), "--source", "leads", "-w", str(acme))
    before = _events(acme)
    _write(leads, [*LEADS[:3], "l3,SQL,not a time"])  # a broken export, loaded with --strict
    failed = invoke_cli("ingest", str(leads), "--source", "leads", "--replace", "--strict", "-w", str(acme), check=False)
    assert failed.returncode == 1 and "leads.csv, line 4, field ts: bad_timestamp" in failed.stderr
    assert _events(acme) == before
    with Workspace(acme) as ws:
        assert [(d["load_id"], d["status"]) for d in ws.loads()] == [(1, "completed"), (2, "failed")]
        with pytest.raises(IngestFailed, match="line 4, field ts: bad_timestamp") as caught:
            ws.ingest([str(leads)], source="leads", strict=True, replace=True)
        assert [r.replaced for r in caught.value.reports] == [[]]  # the failed load replaced nothing
        assert [d["status"] for d in ws.loads()] == ["completed", "failed", "failed"]
    assert _events(acme) == before


def test_when_a_later_file_fails_the_journey_has_the_files_before_it(acme, tmp_path):
    """Files commit one by one: when the second fails, the first one's replacement is already in the events, and
    identity and the journey tables are rebuilt to match (they would still hold the replaced rows)."""
    a = _write(tmp_path / "a.csv", ["customer_id,event,ts", "ann,signup,2024-01-01T09:00:00Z"])
    b = _write(tmp_path / "b.csv", ["customer_id,event,ts", "bob,signup,2024-01-02T09:00:00Z"])
    invoke_cli("ingest", str(a), str(b), "-w", str(acme))
    _write(a, ["customer_id,event,ts", "cid,signup,2024-01-01T09:00:00Z"])
    _write(b, ["customer_id,event,ts", "bob,signup,never"])
    failed = invoke_cli("ingest", str(a), str(b), "--replace", "--strict", "-w", str(acme), check=False)
    assert failed.returncode == 1
    assert _events(acme) == [("bob", "signup"), ("cid", "signup")]  # a.csv replaced; b.csv's load kept
    assert _table(acme, "SELECT person_id FROM persons ORDER BY 1") == [("u:bob",), ("u:cid",)]
