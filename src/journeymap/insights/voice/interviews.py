"""Interview transcripts as events: one `.txt` file per interview, linked to a person by a small header.

    email: ana@acme.com
    date: 2026-01-05
    title: Onboarding interview

    The transcript, as many lines and paragraphs as it takes ...

The header is `key: value` lines up to the first blank line. `date` (ISO date or date-time; naive means
UTC) and one of `email`, `user_id`, `account_id` are required; `title`, `interviewer` and any other keys
are kept under `properties.header`. Each file becomes an `interview_transcript` event (source `other`, channel
`interview`) with the text in `properties.text`. A transcript longer than MAX_PART_CHARS is split at
paragraph breaks into parts (`part`, `parts`), because the store refuses events over 32 KiB.

The events are written as one canonical JSON Lines file under the workspace's `data/interviews/` and
loaded with `Workspace.ingest`, so dead letters and idempotency apply: the message id is derived from
the file name, so adding the same folder again adds nothing (docs/metrics/voice-of-customer.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

EVENT = "interview_transcript"
MAX_PART_CHARS = 24_000
IDENTIFIERS = ("email", "user_id", "account_id")
_KEY = re.compile(r"^([A-Za-z][A-Za-z0-9_ -]*):\s*(.*)$")


class TranscriptError(ValueError):
    """A transcript file whose header cannot be read; the message names the file and the line."""


@dataclass
class Transcript:
    path: Path
    header: dict[str, str]
    ts: dt.datetime
    text: str
    parts: list[str] = field(default_factory=list)


def _parse_date(value: str, where: str) -> dt.datetime:
    try:
        ts = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TranscriptError(f"{where}: date {value!r} is not an ISO date (2026-01-05) or date-time") from None
    if ts.tzinfo is not None:
        ts = ts.astimezone(dt.UTC).replace(tzinfo=None)
    return ts


def parse_transcript(path: str | Path) -> Transcript:
    """Read one transcript file; a bad header raises TranscriptError naming the file and line."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TranscriptError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    lines = raw.splitlines()
    header: dict[str, str] = {}
    body_start = len(lines)
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            if not header:  # blank lines before the header are skipped
                continue
            body_start = i
            break
        m = _KEY.match(line.strip())
        if not m:
            raise TranscriptError(f"{path}:{i}: expected a header line `key: value` (e.g. `email: ana@acme.com`), "
                                  f"got {line.strip()[:60]!r}; end the header with a blank line")
        key = m.group(1).strip().lower().replace(" ", "_").replace("-", "_")
        if key in header:
            raise TranscriptError(f"{path}:{i}: header key {key!r} given twice")
        header[key] = m.group(2).strip()
    if "date" not in header:
        raise TranscriptError(f"{path}:1: the header needs `date: YYYY-MM-DD`")
    if not any(header.get(k) for k in IDENTIFIERS):
        raise TranscriptError(f"{path}:1: the header needs one of {', '.join(f'`{k}:`' for k in IDENTIFIERS)} "
                              "to link the interview to a person or account")
    date_line = next(i for i, line in enumerate(lines, start=1) if line.strip().lower().startswith("date"))
    ts = _parse_date(header["date"], f"{path}:{date_line}")
    text = "\n".join(lines[body_start:]).strip()
    if not text:
        raise TranscriptError(f"{path}:{body_start}: the transcript is empty (the text goes after the header's blank line)")
    return Transcript(path, header, ts, text, split_parts(text))


def split_parts(text: str, limit: int = MAX_PART_CHARS) -> list[str]:
    """The text in parts of at most `limit` characters, cut at paragraph breaks (then lines, then hard)."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for para in re.split(r"\n\s*\n", text):
        pieces = [para[i:i + limit] for i in range(0, len(para), limit)] if len(para) > limit else [para]
        for piece in pieces:
            if current and len(current) + 2 + len(piece) > limit:
                parts.append(current)
                current = ""
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        parts.append(current)
    return parts


def transcript_events(t: Transcript) -> list[dict]:
    """Canonical events (JSON Lines rows) for one transcript: one per part."""
    h = dict(t.header)
    base = {k: h.pop(k) for k in IDENTIFIERS if h.get(k)}
    h.pop("date", None)
    rows = []
    for k, part in enumerate(t.parts, start=1):
        key = f"{t.path.name}#{k}" if len(t.parts) > 1 else t.path.name
        props = {"text": part, "file": t.path.name, "header": h}  # nested: a `title:` is not read as customer text
        if len(t.parts) > 1:
            props.update(part=k, parts=len(t.parts))
        rows.append({
            "message_id": "interview-" + hashlib.sha1(key.encode()).hexdigest()[:20],
            "ts": t.ts.isoformat(sep=" "), "event": EVENT, "type": "track", "source": "other", "channel": "interview",
            **base, "properties": props,
        })
    return rows


def write_interviews(directory: str | Path, out_dir: str | Path) -> tuple[Path, int]:
    """Parse every `*.txt` under `directory` (sorted, recursively) and write one JSON Lines file of events
    to `out_dir`; returns (path, transcripts). Every file is parsed before anything is written."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such folder of interview transcripts")
    files = sorted(p for p in directory.rglob("*.txt") if p.is_file())
    if not files:
        raise FileNotFoundError(f"{directory}: no .txt transcripts found")
    rows = [row for f in files for row in transcript_events(parse_transcript(f))]
    payload = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"interviews-{hashlib.sha1(payload.encode()).hexdigest()[:12]}.jsonl"
    out.write_text(payload, encoding="utf-8")
    return out, len(files)


def add_interviews(directory: str | Path, out_dir: Path, ingest: Callable[[list[str]], list]) -> dict:
    """Load a folder of transcripts through the ingest path; returns the load report.

    The events file goes to `out_dir`; `ingest` loads it (the workspace passes its own `ingest`, which
    this layer below it does not import)."""
    path, n = write_interviews(directory, out_dir)
    reports = ingest([str(path)])
    r = reports[0]
    return {"transcripts": n, "file": str(path), "accepted": r.accepted, "duplicate": r.duplicate, "rejected": r.rejected}
