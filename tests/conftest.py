"""Shared fixtures: the public reference data beside the repo, and running the real CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Before a test loads OpenMP or BLAS (nothing imported above does): xdist's workers share the cores, and a
# thread pool sized to all of them spin-waits for cores another worker holds: a 4 s fixture that fits the
# churn model took 52 s beside two busy processes (its tests 67 s each in a run of the suite), 6 s with one thread.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_pool, str(max(1, (os.cpu_count() or 1) // _WORKERS)))

from journeymap.engine.spark_backend import LOCAL_FILES  # after the pools are sized: it loads Ibis and NumPy

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


_SIMULATED: dict = {}
_INGESTED: dict = {}


@contextmanager
def _built_once(factory: pytest.TempPathFactory, name: str, build) -> Iterator:
    """`build(folder)`'s result, made once per run however many xdist workers ask: under the run's shared
    temp root (each worker's own root's parent), the first worker to take the lock builds and pickles the
    result, the others wait for it and read it. Without xdist the root is this process's own."""
    import fcntl
    import pickle

    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent / "shared"
    root.mkdir(parents=True, exist_ok=True)
    done = root / f"{name}.pickle"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.exists():
                folder = root / name
                folder.mkdir()
                result = build(folder)
                done.write_bytes(pickle.dumps(result))
            yield pickle.loads(done.read_bytes())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _simulated(factory: pytest.TempPathFactory, accounts: int, seed: int):
    if (accounts, seed) not in _SIMULATED:
        from journeymap.demo import simulate

        def build(folder: Path):
            started = time.perf_counter()
            out = simulate(folder / "ws", accounts=accounts, seed=seed)
            return out, time.perf_counter() - started

        with _built_once(factory, f"demo-{accounts}-{seed}", build) as result:
            _SIMULATED[accounts, seed] = result
    return _SIMULATED[accounts, seed]


@pytest.fixture(scope="session")
def simulated_demo(tmp_path_factory):
    """`build(accounts, seed)` -> (DemoOutput, seconds `simulate` took): the demo business simulated once per
    run for each size and seed (once across xdist workers too). Its files (data/, truth/, journeymap.yml)
    are never changed afterwards; `ingested_demo` of the same size and seed adds the store beside them.
    Read them, never write there."""
    return lambda accounts, seed: _simulated(tmp_path_factory, accounts, seed)


@pytest.fixture(scope="session")
def ingested_demo(tmp_path_factory):
    """`build(accounts, seed)`: the demo business simulated and ingested (store closed) once per run
    for each size and seed (once across xdist workers, each of which then reads its own copy); open it with `Workspace(out.workspace)` and close it when done. A test that
    changes the workspace (keys, events, a served journal) works on `demo_copy` instead."""
    def build(accounts: int, seed: int):
        if (accounts, seed) not in _INGESTED:
            from journeymap.workspace import Workspace

            out, _ = _simulated(tmp_path_factory, accounts, seed)

            def ingest(folder: Path):
                ingested = copy_demo(out, folder / "ws")  # the simulated files stay as simulate wrote them
                ws = Workspace(ingested.workspace)
                try:
                    for path, mapping in ingested.files:
                        ws.ingest([str(path)], source=mapping, refresh=False)
                    ws.refresh()
                finally:
                    ws.close()
                return ingested

            with _built_once(tmp_path_factory, f"ingested-{accounts}-{seed}", ingest) as shared:
                # A workspace is opened by one process at a time: each xdist worker reads its own copy.
                _INGESTED[accounts, seed] = shared if not os.environ.get("PYTEST_XDIST_WORKER") else copy_demo(
                    shared, tmp_path_factory.mktemp(f"ingested-{accounts}-{seed}") / "ws")
        return _INGESTED[accounts, seed]

    return build


def copy_demo(out, dest: Path):
    """A copy of a built demo workspace folder (its store closed) at `dest`, as a DemoOutput whose paths
    point into the copy: copying the DuckDB file takes a fraction of a second, rebuilding takes many."""
    src = Path(out.workspace)
    shutil.copytree(src, dest)
    moved = lambda p: dest / Path(p).relative_to(src)  # noqa: E731
    return dataclasses.replace(out, workspace=dest, definition=moved(out.definition), truth=moved(out.truth),
                               files=[(moved(p), m) for p, m in out.files])


@pytest.fixture(scope="session")
def demo_copy(ingested_demo, tmp_path_factory):
    """`copy(accounts, seed)`: a fresh copy of `ingested_demo(accounts, seed)` for a test or fixture that changes it."""
    def copy(accounts: int, seed: int):
        return copy_demo(ingested_demo(accounts, seed), tmp_path_factory.mktemp(f"demo-copy-{accounts}-{seed}") / "ws")

    return copy


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the installed `journeymap` command as a user would, in a subprocess (1-2 s of imports each: use
    `invoke_cli` unless the process itself matters, e.g. its exit status, output streams or a lock's pid)."""
    proc = subprocess.run(
        [sys.executable, "-m", "journeymap", *args], capture_output=True, text=True, timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"journeymap {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def cli_json(*args: str):
    return json.loads(run_cli(*args, "--json").stdout)


def invoke_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`journeymap ARGS` in this process through typer's CliRunner, on the app the installed command runs
    (`journeymap.cli.main:app`), with the same terminal width as `run_cli`: the same exit status, stdout and
    stderr, without starting Python. An unexpected exception is exit status 1, its traceback in stderr."""
    import traceback

    from typer.testing import CliRunner

    from journeymap.cli.main import app

    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, list(args), prog_name="journeymap")
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    proc = subprocess.CompletedProcess(["journeymap", *args], result.exit_code, result.stdout, stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"journeymap {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def invoke_json(*args: str):
    """`cli_json`, in this process (`invoke_cli`)."""
    return json.loads(invoke_cli(*args, "--json").stdout)


@contextmanager
def serve_in_process(workspace: str | Path, **options) -> Iterator:
    """The app `journeymap serve` runs (`create_app`, with serve's defaults unless `options` say otherwise), in
    this process through starlette's TestClient (an httpx.Client over ASGI, no socket). The lifespan runs as
    in the server: on entry the store is opened and locked, the keys loaded, the journal replayed and the
    loader started; on exit the journal is flushed and loaded and the store closed. Like a plain
    httpx.Client it follows no redirects; an exception in the app fails the test with its traceback.
    Tests that need the process or the socket (kill -9, a lock held by another pid, a body that never ends,
    a browser, schemathesis's CLI) use test_tracking_api.Server, the real `journeymap serve`."""
    from fastapi.testclient import TestClient

    from journeymap.server.app import create_app

    with TestClient(create_app(workspace, **options), base_url="http://testserver", follow_redirects=False) as client:
        yield client


SPARK_TEST_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=256m"
"""For the test JVMs only (this session's and the Spark Connect server's): the quick C1 compiler alone and
one GC thread. The tests run many small, short-lived queries on two shared cores, where C2's compile
threads and a parallel GC cost more than they give back: the Spark tests take about a third less time
(test_spark_suite.py + test_lifecycle.py: 132 s -> 96 s). JIT tiers change no result. The C1-only JVM reserves 48 MB
for compiled code, which the Spark tests fill in about a minute ("CodeCache is full. Compiler has been disabled":
every method compiled after that is interpreted); with 256 MB the whole Spark group used at most 57 MB and kept
compiling (`jcmd PID Compiler.codecache` at its end; `pytest -m spark`: 389 s -> 365 s).
"""


SPARK_TEST_CONF = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
    "spark.hadoop.fs.file.impl": LOCAL_FILES,  # as spark_session_for sets it
}
"""For the test Spark sessions only (local and Connect): evaluate expressions interpreted instead of compiling
Java for each query, and plan once without adaptive re-optimisation. The tests run hundreds of distinct
queries over a few thousand rows, where Janino's compile and AQE's re-planning cost far more than they save
(test_spark_smoke.py: 117 s -> 83 s). The Spark fold reads one folder per event date: listed by the driver,
not by a Spark job over hundreds of tiny tasks (as spark_session_for sets it for a local master). Spark's own test
suite runs both modes for equal results; the engine comparison is about our SQL's meaning, which neither changes.
Production sessions keep Spark's other defaults."""


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
        .config("spark.driver.extraJavaOptions", SPARK_TEST_JAVA_OPTIONS)
        .config(map=SPARK_TEST_CONF)
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("OFF")
    yield spark
    spark.stop()


_MAPS: dict = {}

DEMO_MAP_GROUP = "demo-map-1500-7"
"""The xdist group of the modules that read `demo_map`: one worker builds the map once for all of them."""


@pytest.fixture(scope="session")
def demo_map(ingested_demo):
    """The full map (insights on, the registry's panels as `build_map` defaults) of the 1,500-account demo
    (seed 7), as JSON-ready data: built once per worker and handed out as a deep copy, so a test that changes
    its copy changes nobody else's. Modules using it set `pytestmark = pytest.mark.xdist_group(DEMO_MAP_GROUP)`."""
    import copy
    import json

    if "model" not in _MAPS:
        from journeymap.insights.map.journey_map import build_map
        from journeymap.workspace import Workspace

        ws = Workspace(ingested_demo(1500, 7).workspace)
        try:
            _MAPS["model"] = json.loads(json.dumps(build_map(ws.engine, ws.definition), default=str))
        finally:
            ws.close()
    return lambda: copy.deepcopy(_MAPS["model"])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under xdist (`make test` runs `-n auto --dist loadgroup`), every Spark test goes to one worker: one
    JVM for the run instead of one per worker, each of which would take a core and a gigabyte to start."""
    for item in items:
        if item.get_closest_marker("spark"):
            item.add_marker(pytest.mark.xdist_group("spark"))


_UNGROUPED: set[str] = set()


def pytest_collection_finish(session):
    """Fail the tests, rather than only slow the run, when xdist's `--dist loadgroup` does not group: it marks each
    grouped test by a suffix it writes into the test's node id, which pytest 9.2 no longer reads (pytest-xdist issue
    #1386; the dev extra pins pytest below 9.2 until xdist follows). The groups would silently stop: each worker
    starting its own Spark JVM and building the module fixtures the group's tests share (`pytest -m spark -n 2`:
    586 s of test time on two workers instead of about 365 s on one)."""
    if os.environ.get("PYTEST_XDIST_WORKER") and getattr(session.config.option, "loadgroup", False):
        _UNGROUPED.update(item.nodeid for item in session.items
                          if item.get_closest_marker("xdist_group") and "@" not in item.nodeid)


def pytest_runtest_setup(item):
    if item.nodeid in _UNGROUPED:
        pytest.fail(f"--dist loadgroup does not group the {len(_UNGROUPED)} tests marked xdist_group: pytest "
                    f"{pytest.__version__} drops the group pytest-xdist writes into node ids (pytest-xdist issue #1386); "
                    "install the dev extra's pytest (below 9.2)", pytrace=False)
