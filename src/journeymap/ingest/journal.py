"""The tracking API's write-ahead journal: append-only segment files of canonical JSON lines.

A request is acknowledged only after its lines are written and fsynced. Writes go through one writer
thread that takes every append waiting at that moment, writes them with one `os.write` and makes them
durable with one `os.fsync` (group commit): concurrent requests share an fsync, so throughput grows
with concurrency instead of being one fsync per request.

    <workspace>/journal/seg-000000000001.jsonl    closed: waiting for the loader
    <workspace>/journal/seg-000000000002.jsonl    open: being appended to
    <workspace>/journal/last-segment              the last segment number handed out (never reused)
    <workspace>/journal/loaded/                   loaded segments kept for debugging (keep_segments)

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
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

SEGMENT_BYTES = 16 << 20
SEGMENT_SECONDS = 1.0
_NAME = re.compile(r"^seg-(\d{12})\.jsonl$")


class JournalUnavailable(RuntimeError):
    """The journal is closed (shutting down) or a write failed: the client should retry (HTTP 503)."""


def segment_name(number: int) -> str:
    return f"seg-{number:012d}.jsonl"


def segment_number(path: Path) -> int | None:
    m = _NAME.match(path.name)
    return int(m.group(1)) if m else None


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
                 on_rotate: Callable[[Path], None] | None = None):
        self.dir = Path(directory)
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
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
        self.stats = {"appends": 0, "bytes": 0, "fsyncs": 0, "segments": 0, "torn_bytes": 0}

    # -- lifecycle -------------------------------------------------------------------------------

    def open(self) -> list[Path]:
        """Recover and start the writer. Returns the existing segments, oldest first, to be replayed."""
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

    # -- appending -------------------------------------------------------------------------------

    def append(self, data: bytes, done: Callable[[BaseException | None], None]) -> None:
        """Queue `data` (whole lines); `done(error)` is called from the writer thread once it is durable."""
        with self._cond:
            if self._closing or self._thread is None:
                raise JournalUnavailable("the journal is closed (the server is shutting down)")
            if self._failed is not None:
                raise JournalUnavailable(f"the journal cannot be written: {self._failed}")
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
            raise JournalUnavailable(str(result[0])) from result[0]

    async def write_async(self, data: bytes) -> None:
        """Append and wait until durable, without blocking the event loop."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def done(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, future, error)

        self.append(data, done)
        error = await future
        if error is not None:
            raise JournalUnavailable(str(error)) from error

    # -- segments --------------------------------------------------------------------------------

    def _segments(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("seg-*.jsonl") if segment_number(p) is not None)

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
        self._last += 1
        tmp = self.dir / "last-segment.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, str(self._last).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.dir / "last-segment")  # made durable by the folder's fsync below
        path = self.dir / segment_name(self._last)
        self._writing = self._last
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _fsync_dir(self.dir)  # the new file's name must survive a crash too
        self._current, self._size, self._opened_at = self._last, 0, time.monotonic()
        self.stats["segments"] += 1

    def _close_segment(self) -> None:
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
            if self._failed is None and self._size and (
                self._size >= self.segment_bytes or time.monotonic() - self._opened_at >= self.segment_seconds
            ):
                self._close_segment()
                self._new_segment()

    def _commit(self, batch: list[tuple[bytes, Callable]]) -> None:
        error: BaseException | None = self._failed
        if error is None:
            data = memoryview(b"".join(d for d, _ in batch))
            try:
                while data:
                    n = os.write(self._fd, data)
                    data = data[n:]
                    self._size += n
                os.fsync(self._fd)
                self.stats["fsyncs"] += 1
                self.stats["appends"] += len(batch)
                self.stats["bytes"] += sum(len(d) for d, _ in batch)
            except OSError as exc:
                error = self._failed = exc
        for _, done in batch:
            done(error)


def _settle(future: asyncio.Future, error: BaseException | None) -> None:
    if not future.done():
        future.set_result(error)
