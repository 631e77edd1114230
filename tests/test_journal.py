"""The tracking API's journal: group commit, torn-tail recovery, rotation, and idempotent replay."""

from __future__ import annotations

import json
import shutil
import threading

import pytest

from journeymap.ingest.journal import Journal, JournalUnavailable, segment_name, truncate_torn_tail
from journeymap.ingest.segment import canonical, line
from journeymap.ingest.store import open_store
from journeymap.server.runner import StoreRunner


def _lines(journal: Journal) -> list[dict]:
    return [json.loads(raw) for p in journal.closed_segments() for raw in p.read_bytes().splitlines()]


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
                seen.extend(p.read_bytes().splitlines())
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


def test_a_segment_that_does_not_parse_is_loaded_line_by_line(tmp_path):
    """Not expected (lines are written whole), but a bad line must not block the journal: the segment
    falls back to the JSON Lines loader, which keeps the good lines and dead-letters the bad one."""
    ws = tmp_path / "ws"
    (ws / "journal").mkdir(parents=True)
    segment = ws / "journal" / segment_name(1)
    segment.write_bytes(_event(1) + b"{not json\n" + _event(2))
    journal = Journal(ws / "journal")
    journal.open()
    journal.close()
    runner = StoreRunner(ws, journal)
    runner.open()
    runner.load_pending()
    runner.stop()
    con = open_store(ws, read_only=True)
    ids = sorted(r[0] for r in con.execute("SELECT message_id FROM events").fetchall())
    dead = con.execute("SELECT row_number, reason FROM dead_letters").fetchall()
    con.close()
    assert ids == ["m-1", "m-2"]
    assert dead == [(2, "bad_json")]
    assert not segment.exists()
