"""The tracking API's write-ahead journal: append-only segment files of checksummed canonical JSON lines.

A request is acknowledged only after its lines are written and fsynced. Writes go through one writer
thread that takes every append waiting at that moment, writes them with one `os.write` and makes them
durable with one `os.fsync` (group commit): concurrent requests share an fsync, so throughput grows
with concurrency instead of being one fsync per request.

    <workspace>/journal/seg-000000000001.jsonl    closed: waiting for the loader
    <workspace>/journal/seg-000000000002.jsonl    open: being appended to
    <workspace>/journal/last-segment              the last segment number handed out (never reused)
    <workspace>/journal/loaded/                   loaded segments kept for debugging (keep_segments)

Each record is one line: the CRC32 of the JSON (8 hex digits), a space, the JSON, a newline
(`frame`). `scan_segment` checks every record: one whose checksum does not match (a damaged byte), or
an unchecksummed line of an older segment that is not UTF-8 JSON, is set aside with its byte offset and
the reason, and every other record is read. The loader quarantines the damaged ones
(`journal/quarantine.jsonl`, `append_quarantine`) and loads the rest.

If the next segment cannot be created or a write fails (disk full, a read-only folder), the journal
stops accepting (`JournalUnavailable`: the server answers 503) and the writer retries every
`retry_seconds`; once a segment can be created again it accepts again, without a restart.

A segment is closed when it reaches `segment_bytes` or has been open `segment_seconds`. A file in
`journal/` is, by definition, not yet loaded: the loader deletes (or moves) it only after its rows are
committed to the store. On open, the torn last line of every segment (a crash mid-write: never
acknowledged) is truncated, and every existing segment is returned for replay; the loader is
idempotent on message_id, so replaying a segment that was half-loaded is harmless.

>>> import tempfile
>>> j = Journal(tempfile.mkdtemp()); _ = j.open()
>>> j.write(b'{"event": "a"}\\n')
>>> j.close(); [p.name for p in j.closed_segments()]
['seg-000000000001.jsonl']
>>> j.closed_segments()[0].read_bytes()
b'7cf72868 {"event": "a"}\\n'
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("journeymap.server")

SEGMENT_BYTES = 16 << 20
SEGMENT_SECONDS = 1.0
RETRY_SECONDS = 1.0
QUARANTINE = "quarantine.jsonl"
_NAME = re.compile(r"^seg-(\d{12})\.jsonl$")
_HEX = frozenset(b"0123456789abcdef")


class JournalUnavailable(RuntimeError):
    """The journal is closed (shutting down) or a write failed: the client should retry (HTTP 503)."""


def segment_name(number: int) -> str:
    return f"seg-{number:012d}.jsonl"


def segment_number(path: Path) -> int | None:
    m = _NAME.match(path.name)
    return int(m.group(1)) if m else None


def frame(data: bytes) -> bytes:
    """`data` (whole lines) as journal records: each line prefixed with its CRC32 in 8 hex digits and a space.

    >>> frame(b'{"a": 1}\\n')
    b'fba18e97 {"a": 1}\\n'
    """
    lines = data.split(b"\n")
    if lines[-1]:
        raise ValueError("the journal takes whole lines (ending with a newline)")
    crc = zlib.crc32
    return b"".join([b"%08x %s\n" % (crc(line), line) for line in lines[:-1]])


@dataclass
class Damaged:
    """A record that cannot be trusted: its 1-based line, the byte offset where it starts, why, and its bytes."""

    line: int
    offset: int
    reason: str  # bad_checksum | bad_utf8 | bad_json | torn
    detail: str
    raw: bytes


@dataclass
class Scan:
    """A segment's records, line-aligned: `lines[i]` is line i+1's JSON, or b"" where that line is damaged
    (or blank). `records` counts the good ones."""

    lines: list[bytes] = field(default_factory=list)
    damaged: list[Damaged] = field(default_factory=list)
    records: int = 0


def scan_segment(data: bytes) -> Scan:
    """Check every record of a segment's bytes. A checksummed record (`frame`) is good when its CRC32
    matches: the writer wrote it, so it is UTF-8 JSON. A line without a checksum (a segment written before
    checksums) is good when it is UTF-8 and a JSON object. A last line with no newline (a write cut short)
    is `torn`."""
    scan = Scan()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the data ends with a newline
    crc, offset, good = zlib.crc32, 0, scan.lines.append
    for number, raw in enumerate(lines, 1):
        if len(raw) > 9 and raw[8] == 32 and _HEX.issuperset(raw[:8]):
            payload = raw[9:]
            if crc(payload) == int(raw[:8], 16):
                good(payload)
                scan.records += 1
            else:
                good(b"")
                scan.damaged.append(Damaged(number, offset, "bad_checksum",
                                            f"CRC32 {crc(payload):08x}, the record says {raw[:8].decode()}", raw))
        elif not raw.strip():
            good(b"")
        else:
            problem = _unchecksummed(raw)
            if problem is None:
                good(raw)
                scan.records += 1
            else:
                good(b"")
                scan.damaged.append(Damaged(number, offset, problem[0], problem[1], raw))
        offset += len(raw) + 1
    if tail:
        scan.damaged.append(Damaged(len(lines) + 1, offset, "torn", "the last line has no newline (a write cut short)", tail))
    return scan


def _unchecksummed(raw: bytes) -> tuple[str, str] | None:
    """Why a line without a checksum cannot be loaded; None when it can."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "bad_utf8", f"byte {raw[exc.start]:#04x} at column {exc.start + 1} is not UTF-8"
    if raw[:1] != b"{" and not text.lstrip().startswith("{"):
        return "bad_json", "not a journal record: no checksum and not a JSON object"
    try:
        value = json.loads(text)
    except ValueError as exc:
        return "bad_json", str(exc)
    return None if isinstance(value, dict) else ("bad_json", "not a JSON object")


def append_quarantine(directory: Path, segment: str, damaged: list[Damaged]) -> int:
    """Append damaged records to `directory/quarantine.jsonl` (fsynced), skipping any already there (a
    segment replayed after a crash); returns how many were new. Each line: segment, line, offset,
    reason, detail, quarantined_at and the record's bytes in base64."""
    path = Path(directory) / QUARANTINE
    known = {(q.get("segment"), q.get("offset")) for q in read_quarantine(directory)}
    new = [d for d in damaged if (segment, d.offset) not in known]
    if not new:
        return 0
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    out = b"".join(json.dumps({
        "segment": segment, "line": d.line, "offset": d.offset, "length": len(d.raw), "reason": d.reason,
        "detail": d.detail, "quarantined_at": now, "raw_base64": base64.b64encode(d.raw).decode(),
    }).encode() + b"\n" for d in new)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, out)
        os.fsync(fd)
    finally:
        os.close(fd)
    return len(new)


def read_quarantine(directory: str | Path) -> list[dict]:
    """The quarantined records of a journal folder, oldest first (a torn last line is left out)."""
    try:
        data = (Path(directory) / QUARANTINE).read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for raw in data.splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out


def truncate_torn_tail(path: Path) -> int:
    """Cut a segment after its last newline; returns the bytes removed (a line that was never acknowledged)."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "r+b") as f:
        pos, tail = size, b""
        while pos > 0:
            step = min(64 * 1024, pos)
            f.seek(pos - step)
            tail = f.read(step)
            nl = tail.rfind(b"\n")
            if nl >= 0:
                keep = pos - step + nl + 1
                break
            pos -= step
        else:
            keep = 0
        if keep < size:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        return size - keep


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    def __init__(self, directory: str | Path, segment_bytes: int = SEGMENT_BYTES, segment_seconds: float = SEGMENT_SECONDS,
                 on_rotate: Callable[[Path], None] | None = None, retry_seconds: float = RETRY_SECONDS):
        self.dir = Path(directory)
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
        self.retry_seconds = retry_seconds
        self.on_rotate = on_rotate
        self._cond = threading.Condition()
        self._rotation = threading.Lock()  # held while the open segment changes
        self._pending: list[tuple[bytes, Callable[[BaseException | None], None]]] = []
        self._closing = False
        self._failed: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._current: int | None = None
        self._writing: int | None = None
        self._size = 0
        self._opened_at = 0.0
        self._last = 0
        self.stats = {"appends": 0, "bytes": 0, "fsyncs": 0, "segments": 0, "torn_bytes": 0, "write_failures": 0,
                      "recoveries": 0}

    # -- lifecycle -------------------------------------------------------------------------------

    def open(self) -> list[Path]:
        """Recover and start the writer. Returns the existing segments, oldest first, to be replayed.
        Raises JournalUnavailable, naming the folder and the reason, when the journal cannot be written."""
        try:
            return self._open()
        except OSError as exc:
            raise JournalUnavailable(f"{self.dir}: the journal cannot be written ({_reason(exc)}); it needs a folder "
                                     "this user can create files in, with free space") from None

    def _open(self) -> list[Path]:
        self.dir.mkdir(parents=True, exist_ok=True)
        existing = self._segments()
        for path in existing:
            self.stats["torn_bytes"] += truncate_torn_tail(path)
        self._last = max([self._read_last(), *(segment_number(p) for p in existing),
                          *(segment_number(p) or 0 for p in (self.dir / "loaded").glob("seg-*.jsonl"))], default=0)
        self._new_segment()
        self._thread = threading.Thread(target=self._run, name="journeymap-journal", daemon=True)
        self._thread.start()
        return existing

    def close(self) -> None:
        """Stop accepting appends, write and fsync what is pending, close the open segment."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @property
    def accepting(self) -> bool:
        return not self._closing and self._failed is None and self._thread is not None

    @property
    def error(self) -> str | None:
        """Why the journal cannot be written now (the writer keeps retrying); None when it can."""
        failed = self._failed
        return None if failed is None else _cannot_write(failed)

    # -- appending -------------------------------------------------------------------------------

    def append(self, data: bytes, done: Callable[[BaseException | None], None]) -> None:
        """Queue `data` (whole lines); `done(error)` is called from the writer thread once it is durable."""
        data = frame(data)
        with self._cond:
            if self._closing or self._thread is None:
                raise JournalUnavailable("the journal is closed (the server is shutting down)")
            if self._failed is not None:
                raise JournalUnavailable(self.error)
            self._pending.append((data, done))
            self._cond.notify()

    def write(self, data: bytes) -> None:
        """Append and wait until durable (for callers on plain threads)."""
        finished = threading.Event()
        result: list[BaseException | None] = []

        def done(error: BaseException | None) -> None:
            result.append(error)
            finished.set()

        self.append(data, done)
        finished.wait()
        if result[0] is not None:
            raise JournalUnavailable(_cannot_write(result[0])) from result[0]

    async def write_async(self, data: bytes) -> None:
        """Append and wait until durable, without blocking the event loop."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def done(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, future, error)

        self.append(data, done)
        error = await future
        if error is not None:  # a batch queued before the journal failed: the same words as a refusal
            raise JournalUnavailable(_cannot_write(error)) from error

    # -- segments --------------------------------------------------------------------------------

    def holding_rotation(self):
        """A context manager that keeps the open segment open (no rotation) and gives its number (None: none is
        open): every other segment file is then closed for good, and may be rewritten (`journeymap erase`)."""
        journal = self

        class _Held:
            def __enter__(self):
                journal._rotation.acquire()
                return journal._writing

            def __exit__(self, *exc):
                journal._rotation.release()

        return _Held()

    def _segments(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("seg-*.jsonl") if segment_number(p) is not None and p.is_file())

    def closed_segments(self) -> list[Path]:
        """Segments the writer is done with, oldest first: everything but the open one.

        Under the rotation lock: without it, a listing taken while the writer swaps segments could see
        the new, open segment as closed, and the loader would retire a file still being appended to."""
        with self._rotation:
            writing = self._writing
            return [p for p in self._segments() if writing is None or segment_number(p) < writing]

    def _read_last(self) -> int:
        try:
            return int((self.dir / "last-segment").read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _new_segment(self) -> None:
        with self._rotation:
            self._open_next()

    def _open_next(self) -> None:
        """Open the next segment. On failure (OSError) nothing changes but `last-segment`, which may then
        name the number the next attempt uses again: a number is only ever given to one file."""
        number = self._last + 1
        tmp = self.dir / "last-segment.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, str(number).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.dir / "last-segment")  # made durable by the folder's fsync below
        path = self.dir / segment_name(number)
        self._writing = number
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            _fsync_dir(self.dir)  # the new file's name must survive a crash too
        except OSError:
            self._writing = None
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            raise
        self._last = number
        self._current, self._size, self._opened_at = number, 0, time.monotonic()
        self.stats["segments"] += 1

    def _close_segment(self) -> None:
        if self._fd is None:
            return
        path = self.dir / segment_name(self._current)
        with self._rotation:
            os.close(self._fd)
            self._fd = None
            self._writing = None
            if self._size == 0:
                path.unlink(missing_ok=True)
        if self._size and self.on_rotate:
            self.on_rotate(path)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    if self._failed is not None:
                        self._cond.wait(self.retry_seconds)
                        break
                    if self._size and time.monotonic() - self._opened_at >= self.segment_seconds:
                        break
                    timeout = self.segment_seconds - (time.monotonic() - self._opened_at) if self._size else None
                    self._cond.wait(timeout)
                batch, self._pending = self._pending, []
                stopping = self._closing and not batch
            if batch:
                self._commit(batch)
            if stopping:
                self._close_segment()
                return
            if self._failed is not None:
                self._recover()
            elif self._size and (
                self._size >= self.segment_bytes or time.monotonic() - self._opened_at >= self.segment_seconds
            ):
                self._close_segment()
                try:
                    self._new_segment()
                except OSError as exc:
                    self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        """Stop accepting: appends now raise JournalUnavailable (503) until `_recover` succeeds."""
        with self._cond:
            self._failed = exc
        self.stats["write_failures"] += 1
        log.error("%s; answering 503 and retrying every %g s", self.error, self.retry_seconds)

    def _recover(self) -> None:
        """After a failure: close the segment a failed write left (cut back to what was acknowledged), then
        try to open a new one; accept again once that works."""
        try:
            if self._fd is not None:
                try:
                    os.ftruncate(self._fd, self._size)  # what the failed batch wrote was never acknowledged
                except OSError:
                    pass  # its records then fail their checksum or are torn: the loader sets them aside
                self._close_segment()
            self._new_segment()
        except OSError as exc:
            with self._cond:
                self._failed = exc  # the reason may have changed
            return
        with self._cond:
            self._failed = None
        self.stats["recoveries"] += 1
        log.warning("the journal can be written again (%s); accepting events", segment_name(self._current))

    def _commit(self, batch: list[tuple[bytes, Callable]]) -> None:
        error: BaseException | None = self._failed
        if error is None:
            data = memoryview(b"".join(d for d, _ in batch))
            written = 0
            try:
                while data:
                    n = os.write(self._fd, data)
                    data = data[n:]
                    written += n
                os.fsync(self._fd)
                self._size += written
                self.stats["fsyncs"] += 1
                self.stats["appends"] += len(batch)
                self.stats["bytes"] += sum(len(d) for d, _ in batch)
            except OSError as exc:
                error = exc
                self._fail(exc)
        for _, done in batch:
            done(error)


def _cannot_write(exc: BaseException) -> str:
    return f"the journal cannot be written: {_reason(exc)}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc)


def _settle(future: asyncio.Future, error: BaseException | None) -> None:
    if not future.done():
        future.set_result(error)
