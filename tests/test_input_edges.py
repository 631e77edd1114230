"""Edge cases of input that used to be accepted wrongly or said wrongly: ids of the wrong JSON type, NUL
characters, lone surrogates, erased rows and the reject rate, a backup that fails half-way."""

from __future__ import annotations

import duckdb
import pytest

from conftest import invoke_cli, invoke_json, serve_in_process
from journeymap.ingest.backup import write_backup
from journeymap.ingest.segment import Rejected, canonical, line
from journeymap.ingest.store import STORE_FILE, open_store
from test_tracking_api import quick_workspace

TRACK = {"type": "track", "event": "Edge Tested", "userId": "u1", "messageId": "m1", "timestamp": "2024-05-01T10:00:00Z"}


def _rejected(ev: dict) -> Rejected:
    with pytest.raises(Rejected) as caught:
        line(canonical(ev))
    return caught.value


@pytest.mark.parametrize(("key", "value", "field", "said"), [
    ("messageId", {"id": 1}, "message_id", "messageId must be a string, not an object"),
    ("messageId", True, "message_id", "messageId must be a string, not a boolean"),
    ("userId", ["u1"], "user_id", "userId must be a string, not an array"),
    ("anonymousId", float("nan"), "anonymous_id", "anonymousId must be a string, not a non-finite number"),
])
def test_an_identifier_of_the_wrong_json_type_is_rejected_not_dropped(key, value, field, said):
    # Before: the value was read as "absent", so a retried event lost its de-duplication or its person.
    r = _rejected({**TRACK, "anonymousId": "a1", key: value})
    assert (r.reason, r.field, str(r)) == ("bad_json", field, said)


def test_numeric_identifiers_are_still_taken_as_text():
    row = canonical({**TRACK, "userId": 4711, "messageId": 12.5})
    assert (row["user_id"], row["message_id"]) == ("4711", "12.5")


@pytest.mark.parametrize(("key", "field"), [("userId", "user_id"), ("messageId", "message_id"), ("event", "event")])
def test_a_nul_character_in_an_identifier_or_the_event_name_is_rejected(key, field):
    r = _rejected({**TRACK, key: "ab\x00cd"})
    assert (r.reason, r.field) == ("control_character", field)


@pytest.mark.parametrize(("where", "field"), [({"properties": {"note": "x\ud800y"}}, "properties"),
                                              ({"userId": "u\udfff"}, "user_id")])
def test_a_lone_surrogate_is_said_as_such_naming_its_field(where, field):
    r = _rejected({**TRACK, **where})  # before: "NaN and Infinity are not JSON numbers"
    assert (r.reason, r.field) == ("bad_json", field)
    assert "lone surrogate" in str(r)


def test_the_server_answers_the_reasons_and_keeps_the_good_neighbours(tmp_path):
    ws, token = quick_workspace(tmp_path / "ws")
    body = ('{"batch": [' + ", ".join([
        '{"type": "track", "event": "Ok", "userId": "u1", "messageId": "ok-1"}',
        '{"type": "track", "event": "Bad", "userId": "u1", "messageId": {"nested": true}}',
        '{"type": "track", "event": "Bad", "userId": "u\\u0000x", "messageId": "nul-1"}',
        '{"type": "track", "event": "Bad", "userId": "u1", "messageId": "sur-1", "properties": {"p": "\\ud800"}}',
        '{"type": "track", "event": "Ok", "userId": "u2", "messageId": "ok-2"}']) + "]}")
    with serve_in_process(ws) as c:
        c.auth = (token, "")
        r = c.post("/v1/batch", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert [(x["index"], x["reason"], x["field"]) for x in r.json()["rejected"]] == [
        (1, "bad_json", "message_id"), (2, "control_character", "user_id"), (3, "bad_json", "properties")]
    con = open_store(ws, read_only=True)
    try:
        assert con.execute("SELECT message_id FROM events ORDER BY 1").fetchall() == [("ok-1",), ("ok-2",)]
    finally:
        con.close()


def test_a_file_row_with_a_nul_in_an_id_goes_to_dead_letters_with_its_row(tmp_path):
    ws = tmp_path / "ws"
    invoke_cli("init", str(ws))
    export = tmp_path / "e.jsonl"
    export.write_text('{"user_id": "a", "event": "x", "ts": "2024-01-01T00:00:00"}\n'
                      '{"user_id": "b\\u0000c", "event": "x", "ts": "2024-01-01T00:00:00"}\n')
    (report,) = invoke_json("ingest", str(export), "--workspace", str(ws))["files"]
    assert (report["accepted"], report["rejected"]) == (1, 1)
    assert [(r["row"], r["field"], r["reason"]) for r in report["rejections"]] == [(2, "user_id", "control_character")]
    assert "position 2" in report["rejections"][0]["detail"]


def test_events_refused_for_an_erased_person_do_not_count_toward_the_reject_rate(tmp_path):
    ws = tmp_path / "ws"
    invoke_cli("init", str(ws))
    first = tmp_path / "first.csv"
    first.write_text("user_id,event,ts\nann,signup,2024-01-01T00:00:00\nbob,signup,2024-01-01T00:00:00\n")
    invoke_cli("ingest", str(first), "--workspace", str(ws))
    invoke_cli("erase", "--person", "ann", "--workspace", str(ws))
    later = tmp_path / "later.csv"  # an old export that still holds her: 3 of its 4 rows are refused
    later.write_text("user_id,event,ts\n" + "".join(f"ann,page_{i},2024-01-02T00:00:00\n" for i in range(3))
                     + "bob,page,2024-01-02T00:00:00\n")
    (report,) = invoke_json("ingest", str(later), "--workspace", str(ws))["files"]
    assert (report["status"], report["accepted"], report["rejected"], report["reject_rate"]) == ("loaded", 1, 3, 0.0)
    assert report["reject_reasons"] == [{"reason": "erased", "field": "user_id", "count": 3}]


@pytest.mark.parametrize("out_exists", [False, True])
def test_a_backup_that_fails_half_way_leaves_no_partial_folder(tmp_path, out_exists):
    ws, _ = quick_workspace(tmp_path / "ws")
    (ws / "journal").mkdir(exist_ok=True)
    (ws / "journal" / "seg-000000000001.jsonl").write_bytes(b"")  # copied before the store fails
    out = tmp_path / "backup"
    if out_exists:
        out.mkdir()
    con = duckdb.connect(str(ws / STORE_FILE))
    con.close()  # the store copy fails after the journal and the definition were written
    with pytest.raises(duckdb.Error):
        write_backup(con, ws, out)
    assert (out.exists(), list(out.iterdir()) if out.exists() else []) == (out_exists, [])
