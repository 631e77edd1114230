"""Erasing a person (`journeymap erase`) and the retention of raw events: real workspaces, the real CLI, and a
byte search of every file of the workspace afterwards (docs/privacy.md)."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import httpx
import pytest

from conftest import invoke_cli, invoke_json
from journeymap.ingest.store import table_names, view_names
from journeymap.workspace import Workspace

ANN_EMAIL = "Ann.Erasable@Example.com"
ANN_USER = "user-ann-4711"
ANN_ANON = "anon-ann-9c1e55"
ANN_TEXT = "the onboarding wizard made me cry zqxjv"  # a survey answer she wrote
EXPORT = f"""message_id,user_id,anonymous_id,email,event,ts,type,properties
m1,,{ANN_ANON},,pricing_viewed,2025-03-01T09:00:00,track,
m2,{ANN_USER},{ANN_ANON},{ANN_EMAIL},signup_completed,2025-03-01T09:05:00,track,
m3,{ANN_USER},,,survey_answered,2025-03-02T09:00:00,track,"{{""comment"": ""{ANN_TEXT}"", ""score"": 2}}"
m4,bob-1,,bob@example.org,pricing_viewed,2025-03-02T10:00:00,track,
m5,bob-1,,,signup_completed,2025-03-02T10:05:00,track,
m6,cat-2,,,pricing_viewed,2025-03-03T10:00:00,track,
m7,,,{ANN_EMAIL},pricing_viewed,not-a-time,track,
"""
NEEDLES = (ANN_EMAIL, ANN_EMAIL.lower(), ANN_USER, ANN_ANON, ANN_TEXT)


def _record(event: dict) -> bytes:
    line = json.dumps(event).encode()
    return b"%08x %s\n" % (zlib.crc32(line), line)


def _workspace(tmp_path: Path) -> tuple[Path, Path]:
    ws = tmp_path / "ws"
    invoke_cli("init", str(ws))
    export = tmp_path / "export.csv"
    export.write_text(EXPORT)
    invoke_cli("ingest", str(export), "--workspace", str(ws), check=False)  # m7 is rejected: a dead letter
    journal = ws / "journal"
    (journal / "loaded").mkdir(parents=True)
    # canonical records, as the tracking API journals them
    ann = {"type": "track", "event": "page_viewed", "user_id": ANN_USER, "message_id": "j1", "source": "product",
           "ts": "2025-03-04T09:00:00Z", "properties": {"path": "/pricing"}}
    other = {**ann, "user_id": "dan-3", "message_id": "j2"}
    (journal / "seg-000000000007.jsonl").write_bytes(_record(ann) + _record(other))
    (journal / "loaded" / "seg-000000000006.jsonl").write_bytes(_record(other) + _record({**ann, "message_id": "j0"}))
    damaged = {"segment": "seg-000000000005.jsonl", "line": 1, "offset": 0, "reason": "bad_checksum",
               "raw_base64": base64.b64encode(b"00000000 " + json.dumps(ann).encode()).decode()}
    (journal / "quarantine.jsonl").write_text(json.dumps(damaged) + "\n")
    return ws, export


def _occurrences(folder: Path) -> dict[str, int]:
    """Every needle's occurrences (case-insensitive) in every file under `folder`, all bytes."""
    found = {}
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            for needle in NEEDLES:
                n = data.count(needle.lower().encode())
                if n:
                    found[f"{path.relative_to(folder)}: {needle}"] = n
    return found


def test_erase_by_email_leaves_no_byte_of_the_person_and_aggregates_drop_her(tmp_path):
    ws, export = _workspace(tmp_path)
    assert _occurrences(ws), "the person must be in the workspace before the erase"
    before = invoke_json("refresh", "--workspace", str(ws))["identity"]
    funnel_before = invoke_json("funnel", "--steps", "pricing_viewed,signup_completed", "--workspace", str(ws))

    result = invoke_json("erase", "--email", ANN_EMAIL.upper(), "--workspace", str(ws))

    assert result["persons"] == [f"u:{ANN_USER}"]
    assert result["removed"]["events"] == 3
    assert result["removed"]["dead_letters"] == 1
    assert result["removed"]["identity_map"] == 3  # user id, anonymous id, email
    assert result["removed"]["persons"] == 1
    assert result["removed"]["state_units_person"] == 1
    assert result["files"] == {"journal/seg-000000000007.jsonl": 1, "journal/loaded/seg-000000000006.jsonl": 1,
                               "journal/quarantine.jsonl": 1}
    assert result["compacted"]["left"] == 0
    assert _occurrences(ws) == {}
    # the other people's records stay
    assert b"dan-3" in (ws / "journal" / "seg-000000000007.jsonl").read_bytes()
    after = invoke_json("refresh", "--workspace", str(ws))["identity"]
    assert after["persons"] == before["persons"] - 1
    funnel_after = invoke_json("funnel", "--steps", "pricing_viewed,signup_completed", "--workspace", str(ws))
    counts = [[step["count"] for step in f["steps"]] for f in (funnel_before, funnel_after)]
    assert counts == [[3, 2], [2, 1]]  # ann viewed pricing and signed up; bob too; cat only viewed
    assert json.dumps(funnel_after).count(ANN_USER) == 0

    # an old export re-ingested: her rows are refused (erased), counted, never stored; the others are duplicates
    report = invoke_json("ingest", str(export), "--workspace", str(ws), "--max-reject-rate", "none")
    assert report["rejected"] == 4 and report["duplicate"] == 3  # m1-m3 and m7 (bad timestamp, but hers) refused
    reasons = {(r["reason"], r["field"]): r["count"] for r in report["files"][0]["reject_reasons"]}
    assert reasons == {("erased", "user_id"): 2, ("erased", "anonymous_id"): 1, ("erased", "email"): 1}
    assert _occurrences(ws) == {}
    assert invoke_json("refresh", "--workspace", str(ws))["identity"]["persons"] == after["persons"]


def test_erase_names_nobody_clearly(tmp_path):
    ws, _ = _workspace(tmp_path)
    proc = invoke_cli("erase", "--person", "user-ann-4712", "--workspace", str(ws), check=False)
    assert proc.returncode == 1
    assert "no person" in proc.stderr and "did you mean 'user-ann-4711'" in proc.stderr
    proc = invoke_cli("erase", "--workspace", str(ws), check=False)
    assert proc.returncode == 2 and "exactly one of --person" in proc.stderr
    assert _occurrences(ws)  # nothing was erased


def test_erase_by_person_id(tmp_path):
    ws, export = _workspace(tmp_path)
    (ws / "data" / "export.csv").write_bytes(export.read_bytes())  # an export the user keeps in the workspace
    (ws / "journey-map.html").write_text("<p>bob@example.org</p>")  # a report written before the erase
    result = invoke_json("erase", "--person", "u:bob-1", "--workspace", str(ws))
    assert result["removed"]["events"] == 2 and result["persons"] == ["u:bob-1"]
    assert result["still_named_in"] == ["data/export.csv", "journey-map.html"]  # reported, left as they are
    assert (ws / "data" / "export.csv").read_bytes() == export.read_bytes()
    text = invoke_cli("erase", "--person", ANN_USER, "--workspace", str(ws)).stdout
    assert "still named in data/export.csv" in text
    again = invoke_cli("erase", "--person", "bob@example.org", "--workspace", str(ws), check=False)
    assert again.returncode == 1 and "no person" in again.stderr


def test_erase_an_account_takes_its_persons_and_its_events(tmp_path):
    ws = tmp_path / "ws"
    invoke_cli("init", str(ws))
    export = tmp_path / "accounts.csv"
    export.write_text("user_id,account_id,event,ts\n"
                      "bob-1,acme-corp,pricing_viewed,2025-03-02T10:00:00\n"
                      "cat-2,acme-corp,signup_completed,2025-03-03T10:00:00\n"
                      ",acme-corp,invoice_paid,2025-03-04T10:00:00\n"
                      "dan-3,other-co,pricing_viewed,2025-03-03T10:00:00\n")
    invoke_cli("ingest", str(export), "--workspace", str(ws))
    result = invoke_json("erase", "--account", "acme-corp", "--workspace", str(ws))
    assert result["persons"] == ["u:bob-1", "u:cat-2"] and result["accounts"] == ["acme-corp"]
    assert result["removed"]["events"] == 3 and result["removed"]["accounts"] == 1
    assert result["removed"]["state_units_account"] == 1
    for path in ws.rglob("*"):
        if path.is_file():
            assert b"acme-corp" not in path.read_bytes() and b"bob-1" not in path.read_bytes(), path
    report = invoke_json("ingest", str(export), "--workspace", str(ws), "--max-reject-rate", "none")
    assert report["rejected"] == 3 and report["duplicate"] == 1
    reasons = {(r["reason"], r["field"]): r["count"] for r in report["files"][0]["reject_reasons"]}
    assert reasons == {("erased", "user_id"): 2, ("erased", "account_id"): 1}


def test_erase_through_the_server_needs_an_admin_key_and_leaves_no_byte(tmp_path):
    from conftest import serve_in_process

    ws, _ = _workspace(tmp_path)
    (ws / "journal" / "seg-000000000007.jsonl").unlink()  # loaded at start, when the loader gets to it: no fixed count
    read = invoke_json("keys", "create", "--kind", "read", "--name", "analyst", "--workspace", str(ws))["token"]
    admin = invoke_json("keys", "create", "--kind", "admin", "--name", "dpo", "--workspace", str(ws))["token"]
    with serve_in_process(ws) as client:
        body = {"email": ANN_EMAIL}
        assert client.post("/api/v1/erase", json=body).status_code == 401
        assert client.post("/api/v1/erase", json=body, headers={"Authorization": f"Bearer {read}"}).status_code == 401
        missing = client.post("/api/v1/erase", json={"email": "nobody@example.com"},
                              headers={"Authorization": f"Bearer {admin}"})
        assert missing.status_code == 400 and "no person has this email" in missing.json()["detail"]
        answer = client.post("/api/v1/erase", json=body, headers={"Authorization": f"Bearer {admin}"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["removed"]["events"] == 3 and answer.json()["compacted"]["left"] == 0
        # the server goes on: it reads and takes events after the erase
        persons = client.get("/api/v1/funnel", params={"steps": "pricing_viewed,signup_completed"},
                             headers={"Authorization": f"Bearer {read}"})
        assert persons.status_code == 200 and ANN_USER not in persons.text
    assert _occurrences(ws) == {}


def test_erase_command_while_serving_asks_the_server(tmp_path):
    from test_tracking_api import Server

    ws, _ = _workspace(tmp_path)
    server = Server(ws).start()
    try:
        proc = invoke_cli("erase", "--person", ANN_ANON, "--workspace", str(ws))
        assert "erased 1 person" in proc.stdout and "store rewritten" in proc.stdout
        later = httpx.post(f"{server.url}/-/erase", json={"person": ANN_USER})  # no local token: refused
        assert later.status_code == 401
    finally:
        server.stop()
    assert _occurrences(ws) == {}


# -- retention -----------------------------------------------------------------------------------------------------

OLD_AND_NEW = """user_id,event,ts
old-1,pricing_viewed,2023-01-01T09:00:00
old-1,signup_completed,2023-01-02T09:00:00
both-2,pricing_viewed,2023-06-01T09:00:00
both-2,signup_completed,2025-02-01T09:00:00
new-3,pricing_viewed,2025-02-10T09:00:00
new-3,signup_completed,2025-03-01T09:00:00
"""


def _retained(tmp_path: Path, retention: str | None) -> Path:
    ws = tmp_path / "ws"
    invoke_cli("init", str(ws))
    if retention is not None:
        with open(ws / "journeymap.yml", "a") as f:
            f.write(f"\nretention:\n  raw_events: {retention}\n")
    (tmp_path / "events.csv").write_text(OLD_AND_NEW)
    return ws


def test_retention_drops_raw_events_older_than_the_latest_event_less_the_setting(tmp_path):
    ws = _retained(tmp_path, None)
    invoke_cli("ingest", str(tmp_path / "events.csv"), "--workspace", str(ws))
    before = invoke_json("refresh", "--workspace", str(ws))
    assert before["retention"] is None and before["identity"]["persons"] == 3
    with open(ws / "journeymap.yml", "a") as f:
        f.write("\nretention:\n  raw_events: 400d\n")
    after = invoke_json("refresh", "--workspace", str(ws))
    # the latest event is 2025-03-01 09:00; 400 days earlier is 2024-01-26 09:00
    assert after["retention"] == {"raw_events": "400d", "before": "2024-01-26T09:00:00", "dropped": 3}
    assert after["identity"]["persons"] == 2 and after["identity"]["events"] == 3
    assert invoke_json("refresh", "--workspace", str(ws))["retention"]["dropped"] == 0
    # the journey state keeps the aggregates: every unit's stage visits, old-1's too; only the event rows went
    state = invoke_json("state", "--workspace", str(ws))["levels"]
    assert {r["level"]: (r["current"], r["units"], r["events"]) for r in state}["person"] == (True, 3, 3)
    with Workspace(ws) as w:
        visits = w.con.execute("SELECT unit_id, stage, entered_at::DATE::VARCHAR, next_stage FROM state_visits_person "
                               "ORDER BY unit_id, visit_no").fetchall()
        units = w.con.execute("SELECT unit_id, events FROM state_units_person ORDER BY unit_id").fetchall()
    assert visits == [("u:both-2", "evaluation", "2023-06-01", "onboarding"), ("u:both-2", "onboarding", "2025-02-01", None),
                      ("u:new-3", "evaluation", "2025-02-10", "onboarding"), ("u:new-3", "onboarding", "2025-03-01", None),
                      ("u:old-1", "evaluation", "2023-01-01", "onboarding"), ("u:old-1", "onboarding", "2023-01-02", None)]
    assert units == [("u:both-2", 1), ("u:new-3", 2), ("u:old-1", 0)]
    # the analyses that read raw events see the kept window only
    funnel = invoke_json("funnel", "--steps", "pricing_viewed,signup_completed", "--workspace", str(ws))
    assert funnel["steps"][0]["count"] == 1  # only new-3 viewed pricing inside the window
    text = invoke_cli("refresh", "--workspace", str(ws)).stdout
    assert "retention: 0 raw events older than 400d" in text
    # a later event of both-2 is folded onto its kept visits; erasing old-1 takes its kept visits with it
    (tmp_path / "later.csv").write_text("user_id,event,ts\nboth-2,pricing_viewed,2025-03-02T09:00:00\n")
    invoke_cli("ingest", str(tmp_path / "later.csv"), "--workspace", str(ws))
    invoke_cli("erase", "--person", "old-1", "--workspace", str(ws))
    with Workspace(ws) as w:
        assert w.con.execute("SELECT unit_id, stage, visit_no FROM state_visits_person WHERE unit_id <> 'u:new-3' "
                             "ORDER BY unit_id, visit_no").fetchall() == [
            ("u:both-2", "evaluation", 1), ("u:both-2", "onboarding", 2), ("u:both-2", "evaluation", 3)]
        assert not w.con.execute("SELECT * FROM state_units_person WHERE unit_id = 'u:old-1'").fetchall()
    # and old-1 is in the erase log: a re-import of an old export is refused for them
    again = invoke_json("ingest", str(tmp_path / "events.csv"), "--workspace", str(ws))
    assert again["files"][0]["reject_reasons"] == [{"reason": "erased", "field": "user_id", "count": 2}]


def test_retention_applies_on_ingest(tmp_path):
    ws = _retained(tmp_path, "52w")
    invoke_cli("ingest", str(tmp_path / "events.csv"), "--workspace", str(ws))
    assert invoke_json("refresh", "--workspace", str(ws))["identity"]["events"] == 3


@pytest.mark.parametrize(("value", "said"), [("0d", "must be longer than 0"), ("forever", "is not a duration")])
def test_retention_is_validated(tmp_path, value, said):
    ws = _retained(tmp_path, value)
    proc = invoke_cli("validate", "--workspace", str(ws), check=False)
    assert proc.returncode == 1 and "retention.raw_events" in proc.stderr and said in proc.stderr


def test_retention_is_in_the_json_schema():
    schema = json.loads(invoke_cli("schema").stdout)
    assert "raw_events" in json.dumps(schema["$defs"]["Retention"])
    assert "retention" in schema["properties"]


def test_the_servers_loader_applies_retention(tmp_path):
    from conftest import serve_in_process

    ws = _retained(tmp_path, "400d")
    journal = ws / "journal"
    journal.mkdir()
    rows = [line.split(",") for line in OLD_AND_NEW.splitlines()[1:]]
    (journal / "seg-000000000001.jsonl").write_bytes(b"".join(
        _record({"type": "track", "user_id": u, "event": e, "ts": ts + "Z", "message_id": f"r{i}", "source": "product"})
        for i, (u, e, ts) in enumerate(rows)))
    with serve_in_process(ws) as client:
        for _ in range(100):
            health = client.get("/-/health").json()["loader"]
            if health["stitches"]:
                break
            import time

            time.sleep(0.1)
        assert health["retention_dropped"] == 3, health
    assert invoke_json("refresh", "--workspace", str(ws))["identity"]["events"] == 3


def test_erase_with_an_invalid_definition_drops_the_state_rather_than_keep_her_in_it(tmp_path):
    ws, _ = _workspace(tmp_path)
    (ws / "journeymap.yml").write_text("stages: 3\n")  # edited into an invalid file after the state was folded
    result = invoke_json("erase", "--email", ANN_EMAIL, "--workspace", str(ws))
    assert "journey state was dropped" in result["note"]
    assert _occurrences(ws) == {}
    with Workspace(ws) as w:  # its tables and its visits view, none left to read a dropped table through
        assert not table_names(w.con, "state\\_%") and not view_names(w.con, "state\\_%")
    compacted = invoke_json("erase", "--compact-only", "--workspace", str(ws))["compacted"]
    assert compacted["left"] == 0 and compacted["bytes_after"] > 0


def test_erase_refuses_an_identifier_that_names_two_persons(tmp_path):
    ws = tmp_path / "ws"
    invoke_cli("init", str(ws))
    export = tmp_path / "kim.csv"
    export.write_text("user_id,anonymous_id,event,ts\n"
                      "kim-5,,pricing_viewed,2025-03-02T10:00:00\n"
                      ",kim-5,pricing_viewed,2025-03-03T10:00:00\n")  # an anonymous id that is also a user id
    invoke_cli("ingest", str(export), "--workspace", str(ws))
    proc = invoke_cli("erase", "--person", "kim-5", "--workspace", str(ws), check=False)
    assert proc.returncode == 1 and "names 2 persons (a:kim-5, u:kim-5)" in proc.stderr
    assert invoke_json("erase", "--person", "a:kim-5", "--workspace", str(ws))["removed"]["events"] == 1


def test_erase_removes_what_acting_on_her_stored(tmp_path):
    """Playbook entries, outbox rows and tasks about her, or quoting her, go with her; the others stay."""
    from datetime import datetime

    from journeymap.act.outbox import Action, Entry, record
    from journeymap.act.tasks import ensure as ensure_tasks, open_task
    from journeymap.ingest.store import open_store

    ws, _ = _workspace(tmp_path)
    con = open_store(ws)
    try:
        now = datetime(2025, 3, 5)
        record(con, [
            Entry("nudge", "person", f"u:{ANN_USER}", 1, now, False, "csm@example.org", {"rule": "signup"},
                  [Action("task", {"owner": "csm@example.org", "title": "call her", "body": "", "due_at": None})]),
            Entry("detractor", "account", "acct-9", 1, now, False, "csm@example.org",
                  {"comment": ANN_TEXT},  # her comment quoted, with no identifier of hers
                  [Action("email", {"to": ["csm@example.org"], "subject": "detractor", "text": ANN_TEXT})]),
            Entry("nudge", "person", "u:bob-1", 1, now, False, "csm@example.org", {"rule": "signup"},
                  [Action("webhook", {"url": "http://127.0.0.1:9/x", "secret_env": "S", "body": {"unit": "u:bob-1"}})]),
        ], now)
        ensure_tasks(con)
        open_task(con, f"nudge/u:{ANN_USER}/1/0", "nudge", f"u:{ANN_USER}",
                  {"owner": "csm@example.org", "title": "call her", "body": "", "due_at": None}, now)
    finally:
        con.close()
    result = invoke_json("erase", "--email", ANN_EMAIL, "--workspace", str(ws))
    assert result["removed"]["act_entries"] == 2 and result["removed"]["act_outbox"] == 2
    assert result["removed"]["act_tasks"] == 1
    assert _occurrences(ws) == {}
    con = open_store(ws, read_only=True)
    try:
        assert con.execute("SELECT unit_id FROM act_entries").fetchall() == [("u:bob-1",)]
        assert con.execute("SELECT unit_id FROM act_outbox").fetchall() == [("u:bob-1",)]
    finally:
        con.close()


def test_erase_removes_her_scored_texts_and_the_refresh_reads_her_account_again(tmp_path):
    from journeymap.insights.voice.text_state import TEXTS, refresh_texts  # the account level's
    from test_text_state import scored_from_scratch, stored_rows

    ws_path = tmp_path / "ws"
    invoke_cli("init", str(ws_path))
    export = tmp_path / "export.csv"
    export.write_text(f"""message_id,user_id,email,account_id,event,ts,type,properties
m1,{ANN_USER},{ANN_EMAIL},acct-1,survey_answered,2025-03-02T09:00:00,track,"{{""comment"": ""{ANN_TEXT}""}}"
m2,bob-1,,acct-1,ticket_created,2025-03-02T10:00:00,track,"{{""subject"": ""export is slow""}}"
m3,cat-2,,acct-2,ticket_created,2025-03-03T10:00:00,track,"{{""subject"": ""love the reports""}}"
""")
    invoke_cli("ingest", str(export), "--workspace", str(ws_path))
    with Workspace(ws_path) as ws:
        assert refresh_texts(ws.engine, ws.definition).texts == 3
        (her_seq,) = ws.con.execute("SELECT seq FROM events WHERE message_id = 'm1'").fetchone()
    result = invoke_json("erase", "--email", ANN_EMAIL, "--workspace", str(ws_path))
    assert result["removed"][TEXTS] == 1
    with Workspace(ws_path) as ws:
        assert her_seq not in [r[2] for r in stored_rows(ws.con)]
        done = refresh_texts(ws.engine, ws.definition)  # acct-1 lost an event: read again, without hers
        assert (done.units_read, done.texts) == (1, 2)
        assert stored_rows(ws.con) == scored_from_scratch(ws.con, ws.definition)
