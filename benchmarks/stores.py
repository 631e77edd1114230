"""Copies of a built store for timed runs.

A store copied with shutil.copytree sits in the page cache as dirty pages; the first commit that syncs the
database file (a refresh's first append of a whole row group, which DuckDB writes to the file rather than the
log) then waits for the kernel to write back the whole copy: 0.55 s for a 1.3 GB store on this machine, billed
to whatever the benchmark times. `copy_store` syncs the copy before returning, as a store the server has
had open for a while would be.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def copy_store(before: Path, run: Path) -> None:
    """Replace `run` by a copy of the workspace folder `before`, written through to disk."""
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(before, run)
    for path in Path(run).rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
