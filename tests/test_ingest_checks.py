"""`journeymap ingest` in the first hour: misspelt mapping columns, delimiters and encodings, a bad file among
good ones, too many rejects, Segment identify/group rows and rows that name nobody, through the real CLI on a
real DuckDB file (issue 12, section 1)."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import invoke_cli
from journeymap.ingest.segment import canonical
from journeymap.ingest.sniff import SAMPLE_BYTES
from journeymap.workspace import IngestFailed, Workspace

STAGES = "stages:\n  - {id: lead, name: Lead, entry: signup}\n"
CRM_YML = """
sources:
  crm:
    source: crm
    fields:
      user_id: id
      ts: timestampp
      event: ev
      channel: chanel
    properties: [plann, seats]
""" + STAGES
OLD_FILE_KEYS = {"file", "load_id", "rows_read", "accepted", "duplicate", "rejected", "seconds", "rejections"}
OLD_TOTAL_KEYS = {"files", "rows_read", "accepted", "duplicate", "rejected", "seconds"}


@pytest.fixture
def ws_dir(tmp_path) -> Path:
    d = tmp_path / "ws"
    d.mkdir()
    (d / "journeymap.yml").write_text(STAGES)
    return d


def _ingest(ws_dir: Path, *args: str):
    """(exit code, JSON printed, stderr) of `journeymap ingest ARGS --json`."""
    proc = invoke_cli("ingest", *args, "-w", str(ws_dir), "--json", check=False)
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else None), proc.stderr


def _count(ws_dir: Path, sql: str):
    with Workspace(ws_dir) as ws:
        return ws.con.execute(sql).fetchall()


# -- 1. mapped columns must be in the file ------------------------------------------------------------


def test_misspelt_mapping_columns_are_refused_up_front_naming_file_key_and_close_column(ws_dir, tmp_path):
    (ws_dir / "journeymap.yml").write_text(CRM_YML)
    export = tmp_path / "hubspot.csv"
    export.write_text("id,timestamp,ev,channel,plan,seats\n" + "".join(
        f"u{i},2024-01-0{1 + i % 9},signup,web,pro,3\n" for i in range(8)))
    code, out, err = _ingest(ws_dir, str(export), "--source", "crm")
    assert code == 1
    (report,) = out["files"]
    assert report["status"] == "failed" and report["rows_read"] == 0 and report["rejected"] == 0
    error = " ".join(err.split())
    for wrong, key, right in (("timestampp", "fields.ts", "timestamp"), ("chanel", "fields.channel", "channel"),
                              ("plann", "properties", "plan")):
        assert f"'{wrong}' (sources.crm.{key}; did you mean '{right}'?)" in error
    assert error.startswith(f"error: {export}: the file has no columns")
    assert "seats" not in error.split("The file's columns")[0]  # a column that is there is not named
    assert report["error"] == " ".join(err.split())[len("error: "):]
    assert _count(ws_dir, "SELECT count(*) FROM events") == [(0,)]  # nothing loaded, no dead letters either
    assert _count(ws_dir, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert _count(ws_dir, "SELECT status FROM loads") == [("failed",)]


def test_parquet_schema_and_event_sub_mappings_are_checked(ws_dir, tmp_path):
    (ws_dir / "journeymap.yml").write_text("""
sources:
  zendesk:
    source: support
    fields: {email: Requester email}
    events:
      - {event: {value: ticket_created}, ts: Created at}
      - {event: {value: ticket_solved}, ts: Solved at, when: Solved_at}
    traits: [Plan]
""" + STAGES)
    f = tmp_path / "tickets.parquet"
    pq.write_table(pa.table({"Requester email": ["a@x.com"], "Created at": ["2024-02-01T10:00:00Z"],
                             "Solved at": ["2024-02-02T10:00:00Z"], "plan": ["pro"]}), f)
    with Workspace(ws_dir) as ws, pytest.raises(IngestFailed) as caught:
        ws.ingest([str(f)], source="zendesk")
    (report,) = caught.value.reports
    assert "'Solved_at' (sources.zendesk.events[1].when; did you mean 'Solved at'?)" in report.error
    assert "'Plan' (sources.zendesk.traits; did you mean 'plan'?)" in report.error


def test_jsonl_mapped_keys_that_never_occur_in_the_first_batch_are_named(ws_dir, tmp_path):
    (ws_dir / "journeymap.yml").write_text("""
sources:
  app:
    source: product
    fields: {user_id: uid, ts: when, event: name}
    traits: [plan, company]
""" + STAGES)
    f = tmp_path / "app.jsonl"
    f.write_text("".join(json.dumps({"uid": f"u{i}", "whenn": "2024-01-01T00:00:00Z", "name": "signup", "plan": "pro"})
                         + "\n" for i in range(5)))
    code, out, err = _ingest(ws_dir, str(f), "--source", "app")
    assert code == 1 and (out["files"][0]["status"], out["files"][0]["rows_read"]) == ("failed", 0)
    assert "'when' (sources.app.fields.ts; did you mean 'whenn'?)" in " ".join(err.split())
    assert "occurs in the first 5 records" in " ".join(err.split())
    # A key only `traits`/`properties` name may be left out of every record: a warning, and the file loads.
    f.write_text("".join(json.dumps({"uid": f"u{i}", "when": "2024-01-01T00:00:00Z", "name": "signup", "plan": "pro"})
                         + "\n" for i in range(5)))
    code, out, _ = _ingest(ws_dir, str(f), "--source", "app")
    assert code == 0 and out["files"][0]["accepted"] == 5
    assert out["files"][0]["warnings"] == [f"{f}: no key 'company' (sources.app.traits) occurs in the first 5 "
                                           "records; these stay empty"]


def test_canonical_csv_without_a_time_column_is_refused_with_the_close_column(ws_dir, tmp_path):
    f = tmp_path / "events.csv"
    f.write_text("customer_id,event,timestmp\nu1,signup,2024-01-01\n")
    code, out, err = _ingest(ws_dir, str(f))
    assert code == 1 and out["files"][0]["status"] == "failed"
    assert (f"error: {f}: no time column (ts, timestamp, time or originalTimestamp) ('timestmp' is close to "
            "'timestamp': rename it); name the columns so, or map them") in " ".join(err.split())


# -- 2. delimiter and encoding ------------------------------------------------------------------------


@pytest.mark.parametrize(("delimiter", "name"), [(";", ";"), ("\t", "tab"), ("|", "|"), (",", ",")])
def test_the_delimiter_is_sniffed(ws_dir, tmp_path, delimiter, name):
    f = tmp_path / "export.csv"
    rows = [["customer_id", "event", "ts", "note"], ["u1", "signup", "2024-01-01", "a, b; c|d"],
            ["u2", "signup", "2024-01-02", "plain"]]
    with open(f, "w", newline="") as fh:
        csv.writer(fh, delimiter=delimiter).writerows(rows)
    code, out, _ = _ingest(ws_dir, str(f))
    assert code == 0, out
    (report,) = out["files"]
    assert (report["accepted"], report["rejected"], report["delimiter"], report["encoding"]) == (2, 0, name, "utf-8")
    notes = _count(ws_dir, "SELECT json_extract_string(properties, '$.note') FROM events ORDER BY seq")
    assert notes == [("a, b; c|d",), ("plain",)]


def test_the_delimiter_option_and_mapping_key_override_the_sniffer(ws_dir, tmp_path):
    f = tmp_path / "export.csv"
    f.write_text("customer_id;event;ts\nu1;signup;2024-01-01\n")
    code, out, err = _ingest(ws_dir, str(f), "--delimiter", ",")
    assert code == 1 and out["files"][0]["status"] == "failed"  # read with commas: one column, so refused
    assert "The file's columns: customer_id;event;ts" in " ".join(err.split())
    (ws_dir / "journeymap.yml").write_text("sources:\n  semi: {source: crm, delimiter: ';'}\n" + STAGES)
    code, out, err = _ingest(ws_dir, str(f), "--source", "semi")
    assert code == 0, err
    assert out["files"][0]["accepted"] == 1


def test_a_latin1_export_is_transcoded(ws_dir, tmp_path):
    f = tmp_path / "crm.csv"
    f.write_bytes("customer_id,event,ts,owner\nu1,signup,2024-01-01,José Müller\n".encode("latin-1"))
    code, out, err = _ingest(ws_dir, str(f))
    assert code == 0, err
    assert (out["files"][0]["accepted"], out["files"][0]["encoding"]) == (1, "cp1252")
    assert _count(ws_dir, "SELECT json_extract_string(properties, '$.owner') FROM events") == [("José Müller",)]
    # The table names what was guessed, and how to override it.
    proc = invoke_cli("ingest", str(f), "-w", str(ws_dir))
    assert "with encoding cp1252 (from its first lines; --delimiter and --encoding override)" in " ".join(proc.stdout.split())
    # Excel's "Unicode text": UTF-16 with a byte-order mark, tab-separated.
    f = tmp_path / "excel.csv"
    f.write_bytes("customer_id\tevent\tts\towner\nu2\tsignup\t2024-01-01\tZoë\n".encode("utf-16"))
    code, out, err = _ingest(ws_dir, str(f))
    assert code == 0, err
    r = out["files"][0]
    assert (r["accepted"], r["delimiter"], r["encoding"]) == (1, "tab", "utf-16")


def test_non_utf8_bytes_past_the_sample_fail_naming_file_line_and_option(ws_dir, tmp_path):
    f = tmp_path / "big.csv"
    good = "".join(f"u{i},signup,2024-01-01,plain\n" for i in range(SAMPLE_BYTES // 20))
    f.write_bytes(("customer_id,event,ts,owner\n" + good).encode() + "u0,login,2024-01-02,Zoë\n".encode("latin-1"))
    line = good.count("\n") + 2
    code, out, err = _ingest(ws_dir, str(f))
    assert code == 1 and out["files"][0]["status"] == "failed"
    assert f"error: {f}: line {line} has bytes that are not utf-8 (eb); pass --encoding" in " ".join(err.split())
    code, out, err = _ingest(ws_dir, str(f), "--encoding", "latin-1")
    assert code == 0, err
    assert out["files"][0]["accepted"] == line - 1


def test_bad_delimiter_and_encoding_options_are_option_errors(ws_dir, tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("customer_id,event,ts\nu1,signup,2024-01-01\n")
    proc = invoke_cli("ingest", str(f), "-w", str(ws_dir), "--encoding", "latn1", check=False)
    assert proc.returncode == 2 and "unknown encoding 'latn1'; did you mean 'latin_1'?" in proc.stderr
    proc = invoke_cli("ingest", str(f), "-w", str(ws_dir), "--delimiter", ";;", check=False)
    assert proc.returncode == 2 and "one character" in proc.stderr
    (ws_dir / "journeymap.yml").write_text("sources:\n  x: {delimiter: ';;'}\n" + STAGES)
    proc = invoke_cli("ingest", str(f), "-w", str(ws_dir), "--source", "x", check=False)
    assert proc.returncode == 1 and "sources.x.delimiter" in proc.stderr


# -- 3. one bad file does not stop the others ----------------------------------------------------------


def test_an_empty_file_fails_alone_and_the_other_files_load(ws_dir, tmp_path):
    files = [tmp_path / "1.csv", tmp_path / "2-empty.csv", tmp_path / "3.jsonl"]
    files[0].write_text("customer_id,event,ts\nu1,signup,2024-01-01\n")
    files[1].write_text("")
    files[2].write_text('{"userId": "u2", "event": "signup", "timestamp": "2024-01-02T00:00:00Z"}\n')
    code, out, err = _ingest(ws_dir, *map(str, files))
    assert code == 1
    assert [(Path(r["file"]).name, r["status"], r["accepted"]) for r in out["files"]] == [
        ("1.csv", "loaded", 1), ("2-empty.csv", "failed", 0), ("3.jsonl", "loaded", 1)]
    assert out["files"][1]["error"] == f"{files[1]}: the file is empty (0 bytes)"
    assert (out["accepted"], out["failed"]) == (2, 1)
    assert f"error: {files[1]}: the file is empty" in err
    assert set(out) >= OLD_TOTAL_KEYS and all(set(r) >= OLD_FILE_KEYS for r in out["files"])
    assert _count(ws_dir, "SELECT count(*) FROM persons") == [(2,)]  # identity was rebuilt with both files
    # The table says it too.
    proc = invoke_cli("ingest", *map(str, files), "-w", str(ws_dir), check=False)
    assert proc.returncode == 1 and "1 of 3 files failed" in proc.stdout and "failed" in proc.stdout


# -- 4. too many rejects ----------------------------------------------------------------------------


def test_a_file_over_the_reject_rate_fails_the_command_and_keeps_its_good_rows(ws_dir, tmp_path):
    f = tmp_path / "mostly-bad.csv"
    f.write_text("customer_id,event,ts\nu1,signup,2024-01-01\nu2,signup,yesterday\nu3,signup,\nu4,,2024-01-01\n")
    code, out, err = _ingest(ws_dir, str(f))
    assert code == 1
    (r,) = out["files"]
    assert (r["status"], r["accepted"], r["rejected"], r["reject_rate"]) == ("too_many_rejects", 1, 3, 0.75)
    assert r["reject_reasons"] == [{"reason": "bad_timestamp", "field": "ts", "count": 2},
                                   {"reason": "missing_event", "field": "event", "count": 1}]
    message = " ".join(err.split())
    assert (f"{f}: 75.0% of its rows were rejected, over --max-reject-rate 50%; most common: bad_timestamp on ts "
            "(2 rows). The 1 accepted rows are loaded") in message
    assert _count(ws_dir, "SELECT count(*) FROM events") == [(1,)]
    assert _count(ws_dir, "SELECT count(*) FROM dead_letters") == [(3,)]
    code, out, _ = _ingest(ws_dir, str(f), "--max-reject-rate", "80%")
    assert code == 0 and out["files"][0]["status"] == "loaded"  # re-ingest: rejected again, 0.75 <= 0.8
    proc = invoke_cli("ingest", str(f), "-w", str(ws_dir), "--max-reject-rate", "1.5", check=False)
    assert proc.returncode == 2 and "--max-reject-rate" in proc.stderr


# -- 5. Segment identify and group rows in files ------------------------------------------------------


def test_segment_identify_and_group_rows_load_from_files_as_the_tracking_api_stores_them(ws_dir, tmp_path):
    (ws_dir / "journeymap.yml").write_text(STAGES + "personas:\n  - {id: big, name: Big, traits: {plan: enterprise}}\n")
    calls = [
        {"type": "identify", "userId": "u1", "messageId": "m1", "timestamp": "2024-03-01T10:00:00Z",
         "traits": {"email": "ann@acme.com", "plan": "enterprise"}},
        {"type": "group", "userId": "u1", "groupId": "acme", "messageId": "m2", "timestamp": "2024-03-01T10:01:00Z",
         "traits": {"name": "Acme", "employees": 120}},
        {"type": "track", "userId": "u1", "event": "signup", "messageId": "m3", "timestamp": "2024-03-01T10:02:00Z"},
    ]
    f = tmp_path / "segment.jsonl"
    f.write_text("".join(json.dumps(c) + "\n" for c in calls))
    code, out, err = _ingest(ws_dir, str(f))
    assert code == 0 and out["accepted"] == 3, err
    stored = _count(ws_dir, "SELECT message_id, event, type, user_id, email, account_id, traits FROM events ORDER BY seq")
    for row, call in zip(stored, calls, strict=True):
        api = canonical(call, received=datetime(2024, 3, 2))
        assert row[:6] == tuple(api.get(k) for k in ("message_id", "event", "type", "user_id", "email", "account_id"))
        assert (json.loads(row[6]) if row[6] else None) == api.get("traits")
    assert _count(ws_dir, "SELECT emails, json_extract_string(traits, '$.plan') FROM persons") == [
        (["ann@acme.com"], "enterprise")]
    assert _count(ws_dir, "SELECT json_extract_string(traits, '$.name') FROM accounts WHERE account_id = 'acme'") == [("Acme",)]


def test_a_csv_of_identify_rows_needs_no_event_column(ws_dir, tmp_path):
    f = tmp_path / "contacts.csv"
    f.write_text('type,user_id,ts,traits\nidentify,u1,2024-03-01,"{""plan"": ""pro""}"\n'
                 "track,u1,2024-03-02,\n")
    code, out, err = _ingest(ws_dir, str(f), "--max-reject-rate", "none")
    assert code == 0, err
    assert (out["accepted"], out["rejected"]) == (1, 1)
    assert out["files"][0]["rejections"][0]["reason"] == "missing_event"  # a track row still needs its event
    assert _count(ws_dir, "SELECT event, type FROM events") == [("identify", "identify")]


# -- 6. rows that name nobody -----------------------------------------------------------------------

NPS_YML = """
sources:
  nps_panel:
    source: survey
    anonymous: true
    fields:
      ts: {column: CUSTOMER_RESPONSE_DATE, format: "%d/%m/%Y %H:%M"}
      event: {value: nps_answered}
    properties: [SURVEY_SUB_TYPE, NPS_SCORE, text]
surveys:
  - {id: nps, kind: nps, match: nps_answered, score: NPS_SCORE, comment: text}
stages:
  - {id: answered, name: Answered, entry: nps_answered}
"""


def test_a_survey_panel_without_ids_loads_one_anonymous_respondent_per_answer(shared_eval, tmp_path):
    panel = shared_eval / "nps_verbatims_textsummary" / "text_data_verbatim.csv"
    if not panel.exists():
        pytest.skip(f"{panel} is absent")
    ws_dir = tmp_path / "ws"
    ws_dir.mkdir()
    (ws_dir / "journeymap.yml").write_text(NPS_YML.replace("    anonymous: true\n", ""))
    # Without `anonymous`, every answer names nobody: refused as too many rejects, saying why.
    code, out, err = _ingest(ws_dir, str(panel), "--source", "nps_panel")
    assert code == 1 and out["files"][0]["reject_reasons"][0]["reason"] == "missing_identity"
    assert "most common: missing_identity on user_id" in " ".join(err.split())

    with open(panel, newline="") as fh:
        answers = list(csv.DictReader(fh))
    ws_dir = tmp_path / "ws2"
    ws_dir.mkdir()
    (ws_dir / "journeymap.yml").write_text(NPS_YML)
    code, out, err = _ingest(ws_dir, str(panel), "--source", "nps_panel")
    assert code == 0, err
    assert (out["accepted"], out["rejected"]) == (len(answers), 0)
    assert _count(ws_dir, "SELECT count(*), count(DISTINCT anonymous_id) FROM events") == [(len(answers), len(answers))]
    assert _count(ws_dir, "SELECT count(*) FROM persons") == [(len(answers),)]
    first = _count(ws_dir, "SELECT anonymous_id FROM events ORDER BY seq LIMIT 1")[0][0]
    assert first.startswith("text_data_verbatim.csv:2:")  # file name, line, hash of the row
    code, again, _ = _ingest(ws_dir, str(panel), "--source", "nps_panel")
    assert (code, again["accepted"], again["duplicate"]) == (0, 0, len(answers))  # stable ids: nothing added
    # The panel's NPS per year, computed from the file itself (32 answers have a comment but no score).
    by_year: dict[str, list[int]] = {}
    for a in answers:
        if a["NPS_SCORE"]:
            by_year.setdefault(a["CUSTOMER_RESPONSE_DATE"][6:10], []).append(int(a["NPS_SCORE"]))
    rows = json.loads(invoke_cli("surveys", "-w", str(ws_dir), "--group", "period", "--interval", "year",
                                 "--json").stdout)["rows"]
    assert {r["value"][:4]: r["nps"]["n"] for r in rows} == {y: len(s) for y, s in by_year.items()}
    for r in rows:
        s = by_year[r["value"][:4]]
        assert r["nps"]["score"] == pytest.approx(100 * (sum(x >= 9 for x in s) - sum(x <= 6 for x in s)) / len(s))
