"""How a text file is written: its encoding and, for CSV, its delimiter, read from its first bytes.

A file's own bytes decide unless the user said (`--delimiter`, `--encoding`, or the mapping's
`delimiter:` / `encoding:`):

- encoding: UTF-8 (a byte-order mark may start it); UTF-16 when a UTF-16 byte-order mark starts it;
  when the first SAMPLE_BYTES are not UTF-8, cp1252 (Windows' Latin-1, the usual CRM export), or
  Latin-1 when a byte cp1252 leaves undefined occurs. Non-UTF-8 bytes only past the sample make the
  file fail on the line that holds them (`first_bad_line`), naming `--encoding`.
- delimiter: `.tsv` is tab; else the one of , ; tab | that splits the header into several columns and
  every sampled line into as many (csv.Sniffer decides between several that do); else a comma.
"""

from __future__ import annotations

import codecs
import csv
import gzip
from dataclasses import dataclass

from journeymap.ingest.files import InputFile

SAMPLE_BYTES = 1 << 16
SAMPLE_LINES = 50
CANDIDATES = ",;\t|"
NAMES = {",": ",", ";": ";", "\t": "tab", "|": "|"}


@dataclass(frozen=True)
class Dialect:
    delimiter: str | None = ","  # None: not a CSV file
    encoding: str = "utf-8"
    delimiter_sniffed: bool = False
    encoding_detected: bool = False

    def describe(self) -> dict:
        """What the file's report says: the delimiter (CSV only) and the encoding it was read with."""
        d = {"delimiter": NAMES.get(self.delimiter, self.delimiter)} if self.delimiter else {}
        return {**d, "encoding": self.encoding}


def sample(f: InputFile, n: int = SAMPLE_BYTES) -> tuple[bytes, bool]:
    """The first `n` bytes of the file's content (decompressed) and whether that is the whole file."""
    with open(f.path, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if f.compression else raw
        data = stream.read(n + 1)
    return data[:n], len(data) <= n


def detect_encoding(data: bytes, complete: bool) -> str | None:
    """The encoding of a sample: None for UTF-8, else the one to transcode from.

    >>> detect_encoding("José".encode(), True), detect_encoding("José".encode("latin-1"), True)
    (None, 'cp1252')
    >>> detect_encoding("é".encode()[:1], False)  # a character cut by the end of the sample
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError as exc:
        if not complete and exc.reason == "unexpected end of data":
            return None
    try:
        data.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def _fields(line: str, delimiter: str) -> int:
    return len(next(csv.reader([line], delimiter=delimiter), []))


def sniff_delimiter(text: str) -> str | None:
    """The delimiter of CSV text among , ; tab |, or None when none splits it consistently.

    >>> sniff_delimiter("id;name;note\\n1;Ann;a, b\\n2;Bob;c\\n")
    ';'
    >>> sniff_delimiter("id,note\\n1,a; b; c\\n2,d\\n")
    ','
    >>> sniff_delimiter("just one column\\nvalue\\n") is None
    True
    """
    lines = [ln for ln in text.splitlines()[:SAMPLE_LINES] if ln.strip()]
    if not lines:
        return None
    fitting = []
    for d in CANDIDATES:
        n = _fields(lines[0], d)
        if n < 2:
            continue
        rows = lines[1:]
        share = sum(_fields(ln, d) == n for ln in rows) / len(rows) if rows else 1.0
        if share >= 0.9:
            fitting.append(d)
    if len(fitting) <= 1:
        return fitting[0] if fitting else None
    try:
        guess = csv.Sniffer().sniff("\n".join(lines), delimiters="".join(fitting)).delimiter
    except csv.Error:
        guess = None
    return guess if guess in fitting else fitting[0]


def sniff(f: InputFile, delimiter: str | None = None, encoding: str | None = None) -> Dialect | None:
    """The file's dialect: what the user gave, the rest from the file's first bytes (None for Parquet)."""
    if f.format == "parquet":
        return None
    data, complete = sample(f)
    detected = encoding is None
    if encoding is None:
        encoding = detect_encoding(data, complete) or "utf-8"
    sniffed = False
    if f.format == "csv" and delimiter is None:
        if f.path.suffixes[0:1] == [".tsv"]:
            delimiter = "\t"
        else:
            text = data.decode(encoding, errors="replace")
            if not complete:
                text = text.rsplit("\n", 1)[0]  # the last line may be cut
            found = sniff_delimiter(text.lstrip("\ufeff"))
            delimiter, sniffed = (found, True) if found else (",", False)
    if f.format != "csv":
        delimiter = None
    elif delimiter is None:
        delimiter = ","
    return Dialect(delimiter, encoding, sniffed, detected and encoding != "utf-8")


def first_bad_line(f: InputFile, encoding: str) -> tuple[int, bytes] | None:
    """(1-based line, the offending bytes) of the first line that does not decode; None when all do."""
    decoder = codecs.getincrementaldecoder(encoding)()
    with open(f.path, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if f.compression else raw
        for number, line in enumerate(stream, start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError as exc:
                return number, exc.object[exc.start:exc.end]
    return None
