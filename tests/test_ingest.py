"""File ingestion: formats, mappings, dead letters, idempotency and strictness, on a real DuckDB file."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeymap.events.reasons import Reason
from journeymap.ingest.store import StoreLocked, open_store
from journeymap.workspace import IngestFailed, Workspace

HEADER = "customer_id,event,ts,account_id,anonymous_id,email,source,channel,message_id,properties"
GOOD = [
    'u1,signup,2024-01-01T10:00:00Z,a1,anon1,U1@Example.com,product,web,,"{""plan"": ""pro""}"',
    "u1,login,2024-01-02 10:00:00,a1,,,product,web,,",
    "u2,login,2024-01-03T12:00:00+02:00,a2,,,product,app,m-42,",
]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _events(ws: Workspace) -> list[dict]:
    return ws.con.sql(
        "SELECT message_id, ts, event, user_id, account_id, email, source, channel, properties FROM events ORDER BY seq"
    ).to_arrow_table().to_pylist()


def _dead(ws: Workspace) -> list[tuple]:
    return ws.con.execute("SELECT file, row_number, field, reason FROM dead_letters ORDER BY row_number").fetchall()


@pytest.fixture
def ws(tmp_path):
    w = Workspace(tmp_path / "ws")
    w.path.mkdir()
    yield w
    w.close()


def test_canonical_csv_is_loaded_in_utc(ws, tmp_path):
    f = _write(tmp_path / "e.csv", [HEADER, *GOOD])
    (r,) = ws.ingest([str(f)])
    assert (r.rows_read, r.accepted, r.duplicate, r.rejected) == (3, 3, 0, 0)
    rows = _events(ws)
    assert [e["ts"] for e in rows] == [
        dt.datetime(2024, 1, 1, 10), dt.datetime(2024, 1, 2, 10), dt.datetime(2024, 1, 3, 10)  # +02:00 -> UTC
    ]
    assert rows[0]["user_id"] == "u1" and rows[0]["account_id"] == "a1"
    assert json.loads(rows[0]["properties"]) == {"plan": "pro"}
    assert rows[2]["message_id"] == "m-42"
    assert rows[0]["message_id"].startswith("jm-")  # derived from content when the source has none


def test_reingesting_adds_nothing(ws, tmp_path):
    f = _write(tmp_path / "e.csv", [HEADER, *GOOD, "u9,,2024-01-01,,,,,,,"])
    first = ws.ingest([str(f)])[0]
    second = ws.ingest([str(f)])[0]
    assert (first.accepted, first.rejected) == (3, 1)
    assert (second.accepted, second.duplicate, second.rejected) == (0, 3, 1)
    assert ws.con.execute("SELECT count(*) FROM events").fetchone()[0] == 3
    assert ws.con.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 1  # stored once
    loads = ws.con.execute("SELECT accepted, duplicate, rejected, status FROM loads ORDER BY load_id").fetchall()
    assert loads == [(3, 0, 1, "completed"), (0, 3, 1, "completed")]


BAD_ROWS = [
    ("guest,login,2024-01-02,,undefined,,product,,,", "user_id", Reason.MISSING_IDENTITY),
    ("u3,,2024-01-02,,,,product,,,", "event", Reason.MISSING_EVENT),
    ("u4,login,yesterday-ish,,,,product,,,", "ts", Reason.BAD_TIMESTAMP),
    ("u5,login,1970-01-01,,,,product,,,", "ts", Reason.ABSURD_TIMESTAMP),
    ("u6,login,2099-01-01,,,,product,,,", "ts", Reason.ABSURD_TIMESTAMP),
    ('u7,login,2024-01-02,,,,product,,,"[1, 2]"', "properties", Reason.BAD_JSON),
    ('u8,login,2024-01-02,,,,product,,,"{not json"', "properties", Reason.BAD_JSON),
    ("u9,login,2024-01-02,,,,warehouse,,,", "source", Reason.INVALID_SOURCE),
    ("u10,login,2024-01-02,,,,product,,,,too,many", None, Reason.MALFORMED_ROW),
    (f"{'x' * 600},login,2024-01-02,,,,product,,,", "user_id", Reason.FIELD_TOO_LONG),
    (f'u11,login,2024-01-02,,,,product,,,"{{""blob"": ""{"y" * 40000}""}}"', "properties", Reason.OVERSIZED_EVENT),
]


def test_every_bad_row_is_a_dead_letter_naming_file_line_field_and_reason(ws, tmp_path):
    lines = [HEADER, GOOD[0]]
    for bad, _, _ in BAD_ROWS:
        lines += [bad, GOOD[1].replace("login", f"ok{len(lines)}")]  # interleave good rows
    f = _write(tmp_path / "mixed.csv", lines)
    (r,) = ws.ingest([str(f)])
    assert r.rejected == len(BAD_ROWS)
    assert r.accepted == 1 + len(BAD_ROWS)  # every good row survives its bad neighbours
    dead = _dead(ws)
    expected = [(str(f), 3 + 2 * i, field, reason.value) for i, (_, field, reason) in enumerate(BAD_ROWS)]
    assert dead == expected  # line numbers are the file's own (header = line 1)
    # Good rows after a malformed one keep their true line numbers too.
    lines_of_good = [x[0] for x in ws.con.execute("SELECT source_row FROM event_lineage ORDER BY source_row").fetchall()]
    assert lines_of_good == [2, *[4 + 2 * i for i in range(len(BAD_ROWS))]]


def test_rejection_samples_read_well(ws, tmp_path):
    f = _write(tmp_path / "bad.csv", [HEADER, "u3,,2024-01-02,,,,product,,,"])
    (r,) = ws.ingest([str(f)], max_reject_rate=None)
    assert r.samples[0].describe(str(f)) == f"{f}, line 2, field event: missing_event (empty)"


def test_same_message_id_with_other_content_is_a_conflict(ws, tmp_path):
    a = _write(tmp_path / "a.csv", [HEADER, "u1,login,2024-01-02,,,,product,,m-1,"])
    b = _write(tmp_path / "b.csv", [HEADER, "u1,logout,2024-01-02,,,,product,,m-1,", "u1,login,2024-01-02,,,,product,,m-1,"])
    ws.ingest([str(a)])
    (r,) = ws.ingest([str(b)])
    assert (r.accepted, r.duplicate, r.rejected) == (0, 1, 1)
    assert _dead(ws) == [(str(b), 2, "message_id", "conflict")]
    assert [e["event"] for e in _events(ws)] == ["login"]


def test_identical_rows_are_separate_events_and_a_repeated_id_keeps_the_first(ws, tmp_path):
    f = _write(tmp_path / "d.csv", [HEADER, GOOD[0], GOOD[0], "u1,other,2024-01-01T10:00:00Z,,,,product,,dup,",
                                    "u1,other2,2024-01-01T10:00:00Z,,,,product,,dup,", GOOD[0]])
    (r,) = ws.ingest([str(f)])
    # Three identical rows without an id are three events (a log repeats rows; two clicks share a second);
    # a message_id given twice with other content is one event and a conflict.
    assert (r.accepted, r.duplicate, r.rejected) == (4, 0, 1)
    assert [e["event"] for e in _events(ws)] == ["signup", "signup", "other", "signup"]
    assert len({e["message_id"] for e in _events(ws)}) == 4
    (again,) = ws.ingest([str(f)])  # the same file again derives the same ids: nothing is added
    assert (again.accepted, again.duplicate, again.rejected) == (0, 4, 1)
    assert len(_events(ws)) == 4


def test_a_repeat_in_a_later_batch_is_its_own_event(ws, tmp_path, monkeypatch):
    """Occurrences count across the file's read batches, not within one: with tiny batches the repeats of a
    row land in different batches, and all are kept; loading the file again (with other batch sizes) adds
    nothing, and a second file with the same rows is the same events."""
    from journeymap.ingest import readers

    rows = [f"u{i % 3},click,2024-01-0{1 + i % 2}T10:00:00Z,,,,product,web,," for i in range(60)]
    f = _write(tmp_path / "clicks.csv", [HEADER, *rows])
    monkeypatch.setattr(readers, "BATCH_BYTES", 256)  # a few rows per batch
    (r,) = ws.ingest([str(f)])
    assert r.accepted == 60 and r.duplicate == 0
    monkeypatch.setattr(readers, "BATCH_BYTES", 8 << 20)
    (again,) = ws.ingest([str(f)])
    assert (again.accepted, again.duplicate) == (0, 60)
    counts = ws.con.execute("SELECT user_id, ts::DATE::VARCHAR, count(*) FROM events GROUP BY ALL ORDER BY ALL").fetchall()
    expected = {}
    for i in range(60):
        key = (f"u{i % 3}", f"2024-01-0{1 + i % 2}")
        expected[key] = expected.get(key, 0) + 1
    assert counts == sorted((*k, v) for k, v in expected.items())


def test_strict_fails_the_file_and_keeps_the_other_files(ws, tmp_path):
    good = _write(tmp_path / "1-good.csv", [HEADER, *GOOD])
    bad = _write(tmp_path / "2-bad.csv", [HEADER, "u7,login,2024-01-02,,,,product,,,", "u3,,2024-01-02,,,,product,,,"])
    later = _write(tmp_path / "3-later.csv", [HEADER, "u8,login,2024-01-05,,,,product,,,"])
    with pytest.raises(IngestFailed, match=r"2-bad.csv, line 3, field event: missing_event") as caught:
        ws.ingest([str(good), str(bad), str(later)], strict=True)
    assert [r.status for r in caught.value.reports] == ["loaded", "failed", "loaded"]
    assert ws.con.execute("SELECT count(*) FROM events").fetchone()[0] == 4  # nothing of the bad file
    statuses = ws.con.execute("SELECT file, status FROM loads ORDER BY load_id").fetchall()
    assert statuses == [(str(good), "completed"), (str(bad), "failed"), (str(later), "completed")]


def _canonical_table() -> pa.Table:
    return pa.table({
        "customer_id": ["u1", "u1", "u2", "u3"],
        "event": ["signup", "login", "login", "upgrade"],
        "ts": ["2024-01-01T10:00:00Z", "2024-01-02T10:00:00Z", "2024-01-03T10:00:00Z", "2024-01-04T10:00:00Z"],
        "account_id": ["a1", "a1", "a2", None],
        "source": ["product", "product", "product", "billing"],
        "properties": ['{"plan": "pro"}', None, '{"n": 3}', '{"mrr": 99.5}'],
    })


def test_formats_and_compression_give_identical_events(tmp_path):
    table = _canonical_table()
    files = tmp_path / "in"
    files.mkdir()
    pacsv = pytest.importorskip("pyarrow.csv")
    pacsv.write_csv(table, files / "e.csv")
    with open(files / "e.csv", "rb") as src, gzip.open(files / "e.csv.gz", "wb") as dst:
        dst.write(src.read())
    jsonl = "\n".join(json.dumps({k: (json.loads(v) if k == "properties" and v else v) for k, v in row.items() if v is not None})
                      for row in table.to_pylist()) + "\n"
    (files / "e.jsonl").write_text(jsonl)
    with gzip.open(files / "e.jsonl.gz", "wt") as fh:
        fh.write(jsonl)
    typed = table.set_column(2, "ts", pa.array([dt.datetime(2024, 1, d, 10, tzinfo=dt.UTC) for d in (1, 2, 3, 4)]))
    pq.write_table(typed, files / "e.parquet")
    results = {}
    for name in ("e.csv", "e.csv.gz", "e.jsonl", "e.jsonl.gz", "e.parquet"):
        with Workspace(tmp_path / name.replace(".", "_")) as ws:
            ws.path.mkdir()
            (r,) = ws.ingest([str(files / name)])
            assert r.accepted == 4, name
            rows = _events(ws)
            for row in rows:
                row["properties"] = json.loads(row["properties"]) if row["properties"] else None
            results[name] = rows
    baseline = results.pop("e.csv")
    for name, rows in results.items():
        assert [(r["ts"], r["event"], r["user_id"], r["account_id"], r["source"]) for r in rows] == \
               [(r["ts"], r["event"], r["user_id"], r["account_id"], r["source"]) for r in baseline], name
        assert [r["properties"] for r in rows] == [r["properties"] for r in baseline], name


def test_jsonl_bad_lines_are_dead_letters_with_line_numbers(ws, tmp_path):
    f = tmp_path / "e.jsonl"
    f.write_text('{"user_id": "u1", "event": "a", "ts": "2024-01-01T00:00:00Z"}\n\nnot json\n[1]\n'
                 '{"userId": "u2", "event": "b", "timestamp": "2024-01-02T00:00:00Z", "type": "track"}\n')
    (r,) = ws.ingest([str(f)])
    assert (r.accepted, r.rejected) == (2, 2)
    assert [(row, reason) for _, row, _, reason in _dead(ws)] == [(3, "bad_json"), (4, "bad_json")]
    assert [e["user_id"] for e in _events(ws)] == ["u1", "u2"]  # Segment's camelCase keys are understood


def test_globs_expand_and_unmatched_globs_fail(ws, tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    for i in range(3):
        _write(d / f"part-{i}.csv", [HEADER, f"u{i},login,2024-01-0{i + 1},,,,product,,,"])
    reports = ws.ingest([str(d / "part-*.csv")])
    assert [Path(r.file).name for r in reports] == ["part-0.csv", "part-1.csv", "part-2.csv"]
    with pytest.raises(FileNotFoundError, match="no file matches"):
        ws.ingest([str(d / "nothing-*.csv")])


MAPPED_YML = """
sources:
  crm:
    source: crm
    timezone: America/New_York
    fields:
      user_id: Contact ID
      email: Email
      account_id: Company ID
      ts: Changed At
      event: {column: Lifecycle Stage, prefix: "crm_", map: {Closed Won: won}}
    properties: [Owner]
  stripe:
    source: billing
    fields:
      message_id: id
      account_id: customer
      ts: {column: created, format: unix}
      event: {column: type, map: {customer.subscription.created: subscription_started}}
  zendesk:
    source: support
    fields:
      email: Requester email
      account_id: Organization
    events:
      - {event: {value: ticket_created}, ts: Created at}
      - {event: {value: ticket_solved}, ts: Solved at, when: Solved at}
stages:
  - {id: lead, name: Lead, entry: crm_Lead}
"""


def test_source_mappings_load_exports_unedited(ws, tmp_path):
    (ws.path / "journeymap.yml").write_text(MAPPED_YML)
    crm = _write(tmp_path / "crm.csv", ["Contact ID,Email,Company ID,Lifecycle Stage,Changed At,Owner",
                                        "c1,a@x.com,co1,Lead,2024-03-01 09:00,Ann",
                                        "c1,a@x.com,co1,Closed Won,2024-07-01 09:00,Ann"])
    stripe = _write(tmp_path / "stripe.csv", ["id,type,created,customer,plan",
                                              "evt_1,customer.subscription.created,1704067200,co1,pro",
                                              "evt_2,invoice.payment_failed,1704153600,co1,pro"])
    zd = _write(tmp_path / "tickets.csv", ["Ticket ID,Requester email,Organization,Created at,Solved at,Subject",
                                           "1,a@x.com,co1,2024-02-01T10:00:00Z,2024-02-02T10:00:00Z,Help",
                                           "2,b@x.com,co1,2024-02-05T10:00:00Z,,Open one"])
    for path, source in ((crm, "crm"), (stripe, "stripe"), (zd, "zendesk")):
        (r,) = ws.ingest([str(path)], source=source)
        assert r.rejected == 0, r.samples
    rows = _events(ws)
    by_event = {(e["event"], e["email"] or e["account_id"]): e for e in rows}
    lead = by_event[("crm_Lead", "a@x.com")]
    assert lead["ts"] == dt.datetime(2024, 3, 1, 14)  # 09:00 EST is 14:00 UTC
    assert by_event[("crm_won", "a@x.com")]["ts"] == dt.datetime(2024, 7, 1, 13)  # EDT in July
    assert json.loads(lead["properties"]) == {"Owner": "Ann"} and lead["source"] == "crm"
    started = by_event[("subscription_started", "co1")]
    assert started["ts"] == dt.datetime(2024, 1, 1) and started["message_id"] == "evt_1"
    assert ("invoice.payment_failed", "co1") in by_event  # unmapped values pass through
    tickets = sorted((e["event"], e["email"]) for e in rows if e["source"] == "support")
    assert tickets == [("ticket_created", "a@x.com"), ("ticket_created", "b@x.com"), ("ticket_solved", "a@x.com")]


def test_unknown_source_names_are_explained(ws, tmp_path):
    f = _write(tmp_path / "e.csv", [HEADER, *GOOD])
    with pytest.raises(ValueError, match="neither a mapping"):
        ws.ingest([str(f)], source="hubspot")


def test_second_writer_is_told_who_holds_the_lock(tmp_path):
    import subprocess
    import sys

    con = open_store(tmp_path)
    try:
        code = ("from journeymap.ingest.store import open_store, StoreLocked\n"
                f"try:\n    open_store({str(tmp_path)!r})\nexcept StoreLocked as e:\n    print(e)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    finally:
        con.close()
    import os

    assert f"workspace is locked by pid {os.getpid()}" in out
    assert StoreLocked  # the type the CLI reports


rows_strategy = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "guest", "", "u3"]),
        st.sampled_from(["login", "signup", ""]),
        st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-01 00:00:00", "bad", "1980-05-05", "2024-02-30"]),
        st.sampled_from(["", '{"a": 1}', "[1]", "{"]),
    ),
    min_size=1, max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy)
def test_every_row_is_accounted_for_and_reingest_is_idempotent(tmp_path_factory, rows):
    base = tmp_path_factory.mktemp("prop")
    lines = ["customer_id,event,ts,properties"] + [
        f'{u},{e},{t},"{p.replace(chr(34), chr(34) * 2)}"' for u, e, t, p in rows
    ]
    f = _write(base / "e.csv", lines)
    with Workspace(base / "ws") as ws:
        ws.path.mkdir()
        (r1,) = ws.ingest([str(f)], max_reject_rate=None)
        assert r1.rows_read == len(rows)
        assert r1.accepted + r1.duplicate + r1.rejected == len(rows)
        # Reference: a row is valid when it has a person, an event and a sane, real timestamp.
        def valid(u, e, t, p):
            return u not in ("guest", "") and e != "" and t in ("2024-01-01T00:00:00Z", "2024-01-01 00:00:00") \
                and p in ("", '{"a": 1}')
        assert r1.rejected == sum(not valid(*row) for row in rows)
        # Every valid row is an event, identical ones included (both timestamp spellings are one instant,
        # so such rows are identical too); none is a duplicate of another row of the same file.
        assert (r1.accepted, r1.duplicate) == (sum(valid(*row) for row in rows), 0)
        (r2,) = ws.ingest([str(f)], max_reject_rate=None)
        assert (r2.accepted, r2.duplicate) == (0, r1.accepted + r1.duplicate)
