"""Which files a path names (globs allowed), and what format each is in."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


@dataclass(frozen=True)
class InputFile:
    path: Path
    format: str  # csv | jsonl | parquet
    compression: str | None  # gzip or None

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def detect_format(path: Path, override: str | None = None) -> tuple[str, str | None]:
    suffixes = [s.lower() for s in path.suffixes]
    compression = "gzip" if suffixes and suffixes[-1] == ".gz" else None
    if compression:
        suffixes = suffixes[:-1]
    if override:
        return override, compression
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise ValueError(f"{path}: cannot tell the format from the name; use .csv, .jsonl or .parquet (optionally .gz)")
    if fmt == "parquet" and compression:
        raise ValueError(f"{path}: gzip around Parquet is not supported; Parquet compresses its own pages")
    return fmt, compression


def expand(paths: list[str], fmt: str | None = None) -> list[InputFile]:
    """Every file the arguments name, in a stable order; a pattern that matches nothing is an error."""
    out: list[InputFile] = []
    for arg in paths:
        matches = sorted(glob.glob(arg, recursive=True)) if glob.has_magic(arg) else [arg]
        if not matches:
            raise FileNotFoundError(f"{arg}: no file matches")
        for m in matches:
            p = Path(m)
            if p.is_dir():
                raise IsADirectoryError(f"{p}: is a folder; name files or a glob such as '{p}/*.csv'")
            if not p.exists():
                raise FileNotFoundError(f"{p}: no such file")
            out.append(InputFile(p, *detect_format(p, fmt)))
    return out
