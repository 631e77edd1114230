"""Spark Connect: a real local Connect server (the pyspark package's own jar), the same journey through it.

The server runs in its own JVM on a free port, started with `spark-submit --class
org.apache.spark.sql.connect.service.SparkConnectServer` from the pyspark package; the client connects
with `SparkSession.builder.remote("sc://localhost:PORT")` (through `spark_session_for`, as a workspace
with `engine: {remote: ...}` does) and runs a funnel, stage transitions and weekly retention over the
exported Parquet. Results must equal DuckDB's (tests/test_spark_suite.py's tolerances).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SPARK_TEST_CONF, SPARK_TEST_JAVA_OPTIONS
from journeymap.engine.spark_backend import export_journey_tables
from journeymap.workspace import Workspace
from test_spark_suite import same

pytestmark = pytest.mark.spark
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"Spark Connect server exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    pytest.fail(f"Spark Connect server not listening on {port} after {timeout:.0f} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    pyspark = pytest.importorskip("pyspark")
    pytest.importorskip("grpc", reason="the Spark Connect client needs pyspark[connect] (grpcio, grpcio-status)")
    if not shutil.which("java"):
        pytest.skip("Spark needs a Java runtime")
    home = Path(pyspark.__file__).parent
    if not list((home / "jars").glob("spark-connect_*.jar")):
        pytest.skip(f"no spark-connect jar in {home / 'jars'}")
    port, log = _free_port(), tmp_path_factory.mktemp("connect") / "server.log"
    cmd = [str(home / "bin" / "spark-submit"), "--class", SERVER_CLASS, "--master", "local[2]",
           "--conf", f"spark.connect.grpc.binding.port={port}", "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
           "--conf", "spark.sql.session.timeZone=UTC", "--conf", "spark.sql.shuffle.partitions=2",
           "--conf", "spark.ui.enabled=false", "--driver-memory", "1g",
           *[arg for k, v in SPARK_TEST_CONF.items() for arg in ("--conf", f"{k}={v}")],
           "--driver-java-options", SPARK_TEST_JAVA_OPTIONS, "spark-internal"]
    env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable}
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait_for(port, proc, log)
        yield f"sc://localhost:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def small_business(tmp_path_factory, ingested_demo):
    """The 60-account demo (seed 7) that test_spark_insights.py compares too, built once per run."""
    folder = tmp_path_factory.mktemp("connect_demo")
    ws = Workspace(ingested_demo(60, 7).workspace)
    yield ws, export_journey_tables(ws.con, folder / "parquet")
    ws.close()


# The client runs in a child process: pyspark refuses a remote session in a process that already runs a
# classic one ([SESSION_ALREADY_EXIST]), and the Spark suite's local session shares this pytest process.
CLIENT = """
import json, sys
from journeymap.engine.backends import spark_engine
from journeymap.engine.spark_backend import spark_session_for
from journeymap.journey.settings import EngineConfig
from journeymap.journey.load import load_definition
from test_spark_connect import analyses

remote, tables, yml = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
session = spark_session_for(EngineConfig(backend="spark", remote=remote))
assert type(session).__module__.startswith("pyspark.sql.connect"), type(session)
assert session.conf.get("spark.sql.session.timeZone") == "UTC"
engine = spark_engine(session, tables)
out = {name: run(engine) for name, run in analyses(load_definition(yml)).items()}
del engine  # Ibis drops its cached views when they are collected: before the session stops
import gc; gc.collect()
session.stop()
print(json.dumps(out, default=str))
"""


def analyses(d) -> dict:
    from journeymap.engine.funnel_options import funnel_options
    from journeymap.engine.funnels import funnel
    from journeymap.engine.journey_paths import transitions_at
    from journeymap.engine.retention import retention

    steps = funnel_options("signed_up,onboarding_step_completed,report_created", window="30d")
    return {
        "funnel": lambda e: funnel(e, steps, "person"),
        "transitions_stage": lambda e: transitions_at(e, d, "stage", d.analysis.level),
        "retention_weekly": lambda e: retention(e, "signed_up", "dashboard_viewed", interval="week"),
    }


def test_journey_through_spark_connect(connect_server, small_business):
    ws, tables = small_business
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", CLIENT, connect_server, json.dumps(tables), str(ws.definition_path)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    on_spark = json.loads(proc.stdout.strip().splitlines()[-1])
    on_duck = {name: run(ws.engine) for name, run in analyses(ws.definition).items()}
    assert all(on_duck.values()), on_duck
    same(json.loads(json.dumps(on_duck, default=str)), on_spark, "connect")
