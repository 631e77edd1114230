"""The tracking API's journal: group commit, torn-tail recovery, rotation, idempotent replay, checksummed
records (a damaged one is quarantined, the rest load), and a journal that cannot grow."""

from __future__ import annotations

import base64
import json
import shutil
import threading

import pytest

from journeymap.ingest.journal import (Journal, JournalUnavailable, frame, read_quarantine, scan_segment, segment_name,
                                       truncate_torn_tail)
from journeymap.ingest.segment import canonical, line
from journeymap.ingest.store import open_store
from journeymap.server.runner import StoreRunner


def _records(path) -> list[bytes]:
    """A segment's records (the JSON of each line, checksums verified)."""
    scan = scan_segment(path.read_bytes())
    assert not scan.damaged, scan.damaged
    return [line for line in scan.lines if line]


def _lines(journal: Journal) -> list[dict]:
    return [json.loads(raw) for p in journal.closed_segments() for raw in _records(p)]


def test_group_commit_shares_fsyncs_and_keeps_every_line(tmp_path):
    journal = Journal(tmp_path / "journal")
    journal.open()
    threads, per_thread = 16, 100

    def client(k: int) -> None:
        for i in range(per_thread):
            journal.write(json.dumps({"k": k, "i": i}).encode() + b"\n")

    workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    journal.close()
    assert journal.stats["appends"] == threads * per_thread
    assert journal.stats["fsyncs"] < journal.stats["appends"]  # concurrent appends shared an fsync
    got = sorted((r["k"], r["i"]) for r in _lines(journal))
    assert got == [(k, i) for k in range(threads) for i in range(per_thread)]


def test_torn_tail_is_truncated_and_the_segment_replayed(tmp_path):
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    seg = journal_dir / segment_name(7)
    seg.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3, "b": "cut mid-wri')
    journal = Journal(journal_dir)
    replay = journal.open()
    assert replay == [seg]
    assert seg.read_bytes() == b'{"a": 1}\n{"a": 2}\n'
    assert journal.stats["torn_bytes"] == len(b'{"a": 3, "b": "cut mid-wri')
    journal.write(b'{"a": 4}\n')  # goes to a new segment, numbered after the existing one
    journal.close()
    assert [p.name for p in journal.closed_segments()] == [segment_name(7), segment_name(8)]


def test_truncate_handles_no_newline_at_all_and_clean_files(tmp_path):
    p = tmp_path / "seg.jsonl"
    p.write_bytes(b'{"never acknowledged"')
    assert truncate_torn_tail(p) == 21 and p.read_bytes() == b""
    p.write_bytes(b'{"a": 1}\n')
    assert truncate_torn_tail(p) == 0 and p.read_bytes() == b'{"a": 1}\n'


def test_rotation_by_size_and_the_open_segment_is_never_closed(tmp_path):
    journal = Journal(tmp_path / "journal", segment_bytes=100, segment_seconds=60)
    journal.open()
    for i in range(20):
        journal.write(json.dumps({"i": i, "pad": "x" * 20}).encode() + b"\n")
    closed = journal.closed_segments()
    assert len(closed) >= 5
    open_ones = set(p.name for p in (tmp_path / "journal").glob("seg-*.jsonl")) - {p.name for p in closed}
    assert len(open_ones) <= 1  # the one being written
    journal.close()
    assert sorted(r["i"] for r in _lines(journal)) == list(range(20))


def test_a_loader_polling_during_rotations_never_takes_the_open_segment(tmp_path):
    """A consumer that reads and deletes every closed segment, as the loader does, while writers keep
    appending across many rotations, must see every line exactly once."""
    journal = Journal(tmp_path / "journal", segment_bytes=2_000, segment_seconds=0.005)
    journal.open()
    seen: list[bytes] = []
    done = threading.Event()

    def consume() -> None:
        while True:
            finished = done.is_set()
            for p in journal.closed_segments():
                seen.extend(_records(p))
                p.unlink()
            if finished:
                return

    def write(k: int) -> None:
        for i in range(400):
            journal.write(b'{"k": %d, "i": %d}\n' % (k, i))

    consumer = threading.Thread(target=consume)
    consumer.start()
    writers = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    journal.close()
    done.set()
    consumer.join()
    assert journal.stats["segments"] > 20
    assert sorted(seen) == sorted(b'{"k": %d, "i": %d}' % (k, i) for k in range(4) for i in range(400))


def test_segment_numbers_are_never_reused(tmp_path):
    journal = Journal(tmp_path / "journal")
    journal.open()
    journal.write(b'{"a": 1}\n')
    journal.close()
    for p in journal.closed_segments():
        p.unlink()  # loaded and deleted
    again = Journal(tmp_path / "journal")
    assert again.open() == []
    again.write(b'{"a": 2}\n')
    again.close()
    assert [p.name for p in again.closed_segments()] == [segment_name(2)]


def test_appending_after_close_is_unavailable(tmp_path):
    journal = Journal(tmp_path / "journal")
    journal.open()
    journal.close()
    assert not journal.accepting
    with pytest.raises(JournalUnavailable):
        journal.write(b'{"a": 1}\n')


def test_a_batch_queued_before_the_journal_fails_gets_the_refusals_words_not_the_os_error(tmp_path, monkeypatch):
    """A batch accepted just before the writer fails (e.g. the next segment cannot be created) is answered with
    the same words as a batch refused afterwards, never a bare "[Errno 21] Is a directory: ..." (seen once on a
    live server, tests/test_journal_faults.py). The failure is set while the batch is queued, under the
    writer's lock, so the writer takes the batch only after it."""
    journal = Journal(tmp_path / "journal")
    journal.open()
    real_append = journal.append

    def append_then_fail(data, done):
        with journal._cond:
            real_append(data, done)
            journal._failed = IsADirectoryError(21, "Is a directory", str(tmp_path / "journal" / "seg-x.jsonl"))

    monkeypatch.setattr(journal, "append", append_then_fail)
    try:
        with pytest.raises(JournalUnavailable) as refused:
            journal.write(b'{"a": 1}\n')
        assert str(refused.value) == f"the journal cannot be written: Is a directory: {tmp_path / 'journal' / 'seg-x.jsonl'}"
    finally:
        journal.close()


def _event(i: int, **extra) -> bytes:
    ev = {"type": "track", "event": "Song Played", "userId": f"u{i % 7}", "messageId": f"m-{i}",
          "timestamp": "2024-02-01T10:00:00Z", "properties": {"i": i}, **extra}
    return line(canonical(ev))


def test_replaying_a_segment_twice_stores_each_event_once(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    journal = Journal(ws / "journal")
    journal.open()
    journal.write(b"".join(_event(i) for i in range(50)))
    journal.close()
    (segment,) = journal.closed_segments()
    copy = tmp_path / "copy.jsonl"
    shutil.copyfile(segment, copy)

    runner = StoreRunner(ws, journal)
    runner.open()
    runner.load_pending()  # loads, then deletes the segment
    assert not segment.exists()
    shutil.copyfile(copy, segment)  # as if the process died before the segment was retired
    runner.load_pending()
    stats = dict(runner.stats)
    runner.stop()

    con = open_store(ws, read_only=True)
    total, distinct = con.execute("SELECT count(*), count(DISTINCT message_id) FROM events").fetchall()[0]
    segments = con.execute("SELECT segment, accepted, duplicate FROM journal_segments ORDER BY load_id").fetchall()
    dead = con.execute("SELECT count(*) FROM dead_letters").fetchall()[0][0]
    persons = con.execute("SELECT count(DISTINCT person_id) FROM journey_events").fetchall()[0][0]
    con.close()
    assert (total, distinct) == (50, 50)
    assert stats["accepted"] == 50 and stats["duplicate"] == 50
    assert segments == [(segment.name, 50, 0), (segment.name, 0, 50)]
    assert dead == 0
    assert persons == 7  # identity was stitched when the runner stopped


def _load(ws, journal: Journal) -> dict:
    runner = StoreRunner(ws, journal)
    runner.open()
    runner.load_pending()
    stats = dict(runner.stats)
    runner.stop()
    return stats


def _stored(ws) -> tuple[list[str], list[tuple], list[tuple]]:
    con = open_store(ws, read_only=True)
    ids = sorted(r[0] for r in con.execute("SELECT message_id FROM events").fetchall())
    dead = con.execute("SELECT row_number, reason FROM dead_letters ORDER BY row_number").fetchall()
    segments = con.execute("SELECT segment, rows_read, accepted, quarantined FROM journal_segments ORDER BY load_id").fetchall()
    con.close()
    return ids, dead, segments


def test_an_old_segment_without_checksums_loads_and_its_bad_lines_are_quarantined(tmp_path):
    """A segment written before checksums (plain JSON lines) is still read; a line that is not UTF-8 JSON
    is set aside in the quarantine with its line, byte offset and reason, and the others load."""
    ws = tmp_path / "ws"
    (ws / "journal").mkdir(parents=True)
    segment = ws / "journal" / segment_name(1)
    segment.write_bytes(_event(1) + b"{not json\n" + _event(2) + b'{"bad": "\xff"}\n' + _event(3))
    journal = Journal(ws / "journal")
    journal.open()
    journal.close()
    stats = _load(ws, journal)
    ids, dead, segments = _stored(ws)
    assert ids == ["m-1", "m-2", "m-3"]
    assert dead == []
    assert segments == [(segment.name, 3, 3, 2)]
    assert stats["quarantined"] == 2
    q = read_quarantine(ws / "journal")
    assert [(x["segment"], x["line"], x["offset"], x["reason"]) for x in q] == [
        (segment.name, 2, len(_event(1)), "bad_json"),
        (segment.name, 4, len(_event(1)) + 10 + len(_event(2)), "bad_utf8")]
    assert not segment.exists()


@pytest.mark.parametrize("damage", ["bad_utf8", "valid_json_other_letter"])
def test_one_damaged_byte_costs_one_record_not_the_segment(tmp_path, damage):
    """300 records, one byte changed in the middle: 299 load, 1 is quarantined with its segment, line,
    byte offset and reason, and a later segment loads. The second case (a letter changed inside a
    string: still UTF-8 JSON) only the record's checksum can tell; before checksums it was stored as is."""
    ws = tmp_path / "ws"
    journal = Journal(ws / "journal")
    journal.open()
    journal.write(b"".join(_event(i) for i in range(300)))
    journal.close()
    (segment,) = journal.closed_segments()
    data = bytearray(segment.read_bytes())
    middle = data.index(b'"m-150"')  # record 151's messageId
    data[middle + 2] = 0xFF if damage == "bad_utf8" else ord("x")
    segment.write_bytes(bytes(data))
    line_start = data.rindex(b"\n", 0, middle) + 1

    later = Journal(ws / "journal")  # events acknowledged afterwards, in a later segment
    later.open()
    later.write(b"".join(_event(i) for i in range(300, 310)))
    later.close()
    stats = _load(ws, later)
    ids, dead, segments = _stored(ws)
    assert len(ids) == 309 and "m-150" not in ids and {"m-149", "m-151", "m-300", "m-309"} <= set(ids)
    assert dead == []
    assert segments[0] == (segment.name, 299, 299, 1) and segments[1][1:] == (10, 10, 0)
    assert stats["quarantined"] == 1
    (q,) = read_quarantine(ws / "journal")
    assert (q["segment"], q["line"], q["offset"], q["reason"]) == (segment.name, 151, line_start, "bad_checksum")
    assert base64.b64decode(q["raw_base64"]) == bytes(data[line_start:data.index(b"\n", middle)])


def test_a_dead_letter_after_a_quarantined_record_names_the_segment_line(tmp_path):
    """Damaged records are left out of the columnar copy; the rows after them keep the segment's line
    numbers (a dead letter's row, event_lineage's source_row)."""
    ws = tmp_path / "ws"
    journal = Journal(ws / "journal")
    journal.open()
    journal.write(_event(1) + _event(2) + line(canonical({"type": "track", "event": "x", "userId": "guest",
                                                                   "messageId": "m-guest"})))
    journal.close()
    (segment,) = journal.closed_segments()
    data = bytearray(segment.read_bytes())
    data[data.index(b'"m-1"') + 2] = ord("9")  # line 1 damaged
    segment.write_bytes(bytes(data))
    _load(ws, journal)
    ids, dead, _ = _stored(ws)
    con = open_store(ws, read_only=True)
    lineage = con.execute("SELECT message_id, source_row FROM event_lineage").fetchall()
    con.close()
    assert ids == ["m-2"] and lineage == [("m-2", 2)]
    assert dead == [(3, "missing_identity")]


def test_an_empty_or_wholly_damaged_segment_is_retired_without_a_load(tmp_path):
    """An empty segment (a crash right after one was created) or one whose every record is damaged used
    to fail the Loader ("the file is empty") on every retry, holding up every later segment."""
    ws = tmp_path / "ws"
    (ws / "journal").mkdir(parents=True)
    (ws / "journal" / segment_name(1)).write_bytes(b"")
    (ws / "journal" / segment_name(2)).write_bytes(frame(_event(1))[:-5] + b"XXXX\n")
    (ws / "journal" / segment_name(3)).write_bytes(frame(_event(2)))
    journal = Journal(ws / "journal")
    journal.open()
    journal.close()
    stats = _load(ws, journal)
    ids, _, segments = _stored(ws)
    assert ids == ["m-2"] and [s[0] for s in segments] == [segment_name(3)]
    assert stats["quarantined"] == 1 and stats["segments_loaded"] == 3
    assert not list((ws / "journal").glob("seg-*.jsonl"))
