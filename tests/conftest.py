"""Shared fixtures: the public reference data beside the repo, and running the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("JOURNEYMAP_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"public reference data not found at {path} (set JOURNEYMAP_SHARED to the shared/ folder)")
    return path


@pytest.fixture(scope="session")
def shared_eval() -> Path:
    path = SHARED / "eval"
    if not path.is_dir():
        pytest.skip(f"evaluation data not found at {path} (set JOURNEYMAP_SHARED to the shared/ folder)")
    return path


_DEMOS: dict = {}


@pytest.fixture(scope="session")
def ingested_demo(tmp_path_factory):
    """`build(accounts, seed)`: the demo business simulated and ingested (store closed) once per run
    for each size and seed; open it with `Workspace(out.workspace)` and close it when done."""
    def build(accounts: int, seed: int):
        if (accounts, seed) not in _DEMOS:
            from journeymap.demo import simulate
            from journeymap.workspace import Workspace

            out = simulate(tmp_path_factory.mktemp(f"demo-{accounts}-{seed}") / "ws", accounts=accounts, seed=seed)
            ws = Workspace(out.workspace)
            try:
                for path, mapping in out.files:
                    ws.ingest([str(path)], source=mapping, refresh=False)
                ws.refresh()
            finally:
                ws.close()
            _DEMOS[accounts, seed] = out
        return _DEMOS[accounts, seed]

    return build


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the installed `journeymap` command as a user would, in a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "journeymap", *args], capture_output=True, text=True, timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"journeymap {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def cli_json(*args: str):
    return json.loads(run_cli(*args, "--json").stdout)


@pytest.fixture(scope="session")
def spark_session():
    """One local Spark session for the whole run: it takes seconds to start."""
    pytest.importorskip("pyspark", reason="pyspark is a dev extra")
    if not shutil.which("java"):
        pytest.skip("Spark needs a Java runtime (apt-get install openjdk-17-jre-headless)")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.session.timeZone", "UTC")  # Parquet timestamps carry no zone
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")  # the default 200 makes tiny tests crawl
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("OFF")
    yield spark
    spark.stop()
