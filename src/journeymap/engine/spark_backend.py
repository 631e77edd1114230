"""The Spark engine for a workspace: a session from `journeymap.yml`, the journey tables as Parquet.

What runs where (docs/spark.md): validation, de-duplication, dead letters, the journal and identity
stitching stay in the workspace store (DuckDB), the system of record. The analyses read the derived journey
tables (journey_events, persons, accounts) as Parquet under `engine.path`. Where the store writes the Spark
journey state (a local folder or `file://`), they read the state's files, written by month as events arrive
(state.spark_tables.journey_engine); elsewhere, and when those files lag the store, the tables are written whole:
- to a URI (`file:///...`, `s3a://`, `hdfs://`, `abfss://`, `gs://`) by Spark
  (`write_journey_tables_with_spark`), the store's rows streamed to the session in Arrow batches;
- to a plain local folder by DuckDB's `COPY` (`export_journey_tables`), faster and atomic.

    engine: {backend: spark, master: "local[2]"}            # classic Spark in this process
    engine: {backend: spark, remote: "sc://host:15002"}     # Spark Connect
    engine: {backend: spark, master: "spark://h:7077", path: /shared/journey}
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from journeymap.engine.backends import Engine, spark_engine
from journeymap.ingest.store import table_names
from journeymap.journey.settings import EngineConfig

JOURNEY_TABLES = ("journey_events", "persons", "accounts")
DEFAULT_FOLDER = Path("data") / "spark"  # under the workspace, beside the store
_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class SparkConfigError(ValueError):
    """`engine:` in journeymap.yml cannot make a Spark session."""


def _local_cores(master: str) -> int:
    m = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\d+)?\])?", master.strip())
    if not m:
        return 0
    return (os.cpu_count() or 2) if m.group(1) in (None, "*") else int(m.group(1))


LOCAL_FILES = "org.apache.hadoop.fs.RawLocalFileSystem"
"""Local files without Hadoop's checksum side files: a local session writes no `.name.crc` beside each Parquet file
(DuckDB, which writes the store's exports into the same lake, writes none either), a second file for every file
written, and the Spark fold writes one per event date (docs/benchmarks.md, "The journey state on Spark"). Spark
skips dot files when it lists a folder, so folders written with them read the same."""


LOCAL_LISTING = 100_000
"""Paths a local session lists on the driver before it lists them with a Spark job (Spark's default: 32). The Spark
fold reads the journey events from one folder per event date (state.spark_fold): a listing job runs its tasks on
the same cores, with a task's overhead for each. 541 folders took 1.7-2.5 s to register as one DataFrame that way,
0.25-0.28 s listed on the driver (docs/benchmarks.md, "Listing the event dates on Spark")."""


def spark_session_for(config: EngineConfig):
    """A SparkSession for `engine:` of journeymap.yml: `master` (classic) or `remote` (Spark Connect), never both.

    The session time zone is UTC (the Parquet timestamps carry no zone and mean UTC). A local master gets
    few shuffle partitions (Spark's 200 spend small jobs on scheduling), lists folders on the driver
    (`LOCAL_LISTING`) and runs its Python workers with this interpreter unless PYSPARK_PYTHON says otherwise.
    An existing session in this process is reused."""
    if config.backend != "spark":
        raise SparkConfigError(f"engine.backend is {config.backend!r}; a Spark session needs `engine: {{backend: spark}}`")
    if config.master and config.remote:
        raise SparkConfigError("engine.master and engine.remote are both set in journeymap.yml: "
                               "use `master` for classic Spark or `remote` for Spark Connect, not both")
    if not config.master and not config.remote:
        raise SparkConfigError("engine.backend is spark but neither engine.master (e.g. \"local[2]\") nor "
                               "engine.remote (e.g. \"sc://host:15002\") is set in journeymap.yml")
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ImportError("engine.backend is spark in journeymap.yml but pyspark is not installed: "
                          "pip install 'journeymap[spark]'") from exc
    if config.remote:
        try:
            builder = SparkSession.builder.remote(config.remote)
        except ImportError as exc:  # the Connect client's grpc/protobuf packages
            raise ImportError(f"engine.remote is {config.remote!r} but the Spark Connect client is missing "
                              f"({exc}): pip install 'journeymap[spark]' 'pyspark[connect]'") from exc
        return builder.config("spark.sql.session.timeZone", "UTC").getOrCreate()
    builder = SparkSession.builder.master(config.master).config("spark.sql.session.timeZone", "UTC")
    cores = _local_cores(config.master)
    if cores:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (builder.config("spark.sql.shuffle.partitions", str(max(2, cores))).config("spark.driver.memory", "2g")
                   .config("spark.hadoop.fs.file.impl", LOCAL_FILES))
    session = builder.getOrCreate()
    if cores:
        session.conf.set("spark.sql.shuffle.partitions", str(max(2, cores)))  # also on a session that existed
        session.conf.set("spark.sql.sources.parallelPartitionDiscovery.threshold", str(LOCAL_LISTING))
    session.conf.set("spark.sql.session.timeZone", "UTC")
    return session


def parquet_select_list(con, table: str) -> str:
    """Every column, timestamps as timestamp(us) without a zone in UTC (what Spark reads as wall time in UTC)."""
    cols = []
    for name, dtype in con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main' "
        "ORDER BY column_index", [table],
    ).fetchall():
        q = '"' + name.replace('"', '""') + '"'
        if dtype == "TIMESTAMP WITH TIME ZONE":
            cols.append(f"timezone('UTC', {q}) AS {q}")
        elif dtype.startswith("TIMESTAMP") and dtype != "TIMESTAMP":  # _NS, _MS, _S
            cols.append(f"CAST({q} AS TIMESTAMP) AS {q}")
        else:
            cols.append(q)
    return ", ".join(cols)


def export_journey_tables(con, path: str | Path) -> dict[str, str]:
    """Write journey_events, persons and accounts from the DuckDB store `con` to `path/<table>.parquet`.

    DuckDB streams each table with `COPY ... TO ... (FORMAT parquet)`: nothing passes through Python.
    Each file is written beside its target and renamed over it, so a reader never sees half a file and
    a second export replaces the first. `path` is a local folder (created if missing; `file://` is
    accepted here); other URIs are `write_journey_tables_with_spark`'s. Returns table name -> file path."""
    if _URI.match(str(path)) and not str(path).startswith("file://"):
        raise ValueError(f"engine.path {path!r} is a URI: write_journey_tables_with_spark writes there through Spark; "
                         "this DuckDB export writes to a local folder")
    folder = Path(str(path).removeprefix("file://"))
    folder.mkdir(parents=True, exist_ok=True)
    present = table_names(con)
    missing = [t for t in JOURNEY_TABLES if t not in present]
    if missing:
        raise FileNotFoundError(f"the store has no {', '.join(missing)} yet: ingest events (identity builds them) first")
    out = {}
    for table in JOURNEY_TABLES:
        target = folder / f"{table}.parquet"
        tmp = folder / f".{table}.parquet.{os.getpid()}.tmp"  # Spark skips names starting with a dot
        literal = str(tmp).replace("'", "''")
        con.execute(f"COPY (SELECT {parquet_select_list(con, table)} FROM main.\"{table}\") TO '{literal}' "
                    "(FORMAT parquet, COMPRESSION zstd)")
        os.replace(tmp, target)
        out[table] = str(target.resolve())
    return out


def _spark_target(folder: str, table: str) -> str:
    return f"{folder.rstrip('/')}/{table}.parquet"


def _frame(session, table):
    """A DataFrame of an Arrow table whose zone-less timestamps stay TIMESTAMP_NTZ, as Spark reads them
    from the DuckDB export (createDataFrame would make them session-zone TIMESTAMPs, written as INT96)."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    df = session.createDataFrame(table)
    stamps = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
    return df.withColumns({c: F.col(c).cast("timestamp_ntz") for c in stamps}) if stamps else df


def write_journey_tables_with_spark(session, con, folder: str, batch_rows: int = 250_000) -> dict[str, str]:
    """Write journey_events, persons and accounts from the store `con` to `folder/<table>.parquet` with Spark.

    `folder` is any URI Spark can write (`file:///`, `s3a://`, `hdfs://`, ...). The store streams each
    table in Arrow batches of `batch_rows` (never the whole table in Python); each batch becomes a
    Spark DataFrame, the first written with mode overwrite (so a second write replaces the first), the
    rest appended. Timestamps are sent as UTC wall time without a zone, as the DuckDB export writes them,
    so both routes give Spark the same schema. Unlike the local export this is not atomic: a reader
    during the write may see part of a table (Spark has no rename on object stores); analyses read
    after `ingest` returns. Batches are small enough for Spark Connect's message limit."""
    import pyarrow as pa

    present = table_names(con)
    missing = [t for t in JOURNEY_TABLES if t not in present]
    if missing:
        raise FileNotFoundError(f"the store has no {', '.join(missing)} yet: ingest events (identity builds them) first")
    out = {}
    for table in JOURNEY_TABLES:
        target = _spark_target(folder, table)
        reader = con.sql(f"SELECT {parquet_select_list(con, table)} FROM main.\"{table}\"").to_arrow_reader(batch_rows)
        mode = "overwrite"
        for batch in reader:
            if batch.num_rows == 0:
                continue
            _frame(session, pa.Table.from_batches([batch])).write.mode(mode).parquet(target)
            mode = "append"
        if mode == "overwrite":  # an empty table still gets its schema, so readers find the columns
            _frame(session, reader.schema.empty_table()).write.mode(mode).parquet(target)
        out[table] = target
    return out


# The functions below take what they need of a workspace (its store connection `con`, its folder
# `workspace_path`, its `engine:` config) rather than the Workspace, which sits above the engine layer.

def uses_uri(folder: str) -> bool:
    """Whether `folder` is a URI (`file:///...`, `s3a://...`) rather than a plain local path."""
    return bool(_URI.match(folder))


def export_folder(config: EngineConfig, workspace_path: str | Path) -> str:
    """Where the workspace's Parquet lives: `engine.path` (relative to the workspace) or data/spark/."""
    configured = config.path
    if configured and _URI.match(configured):
        return configured
    return str(Path(workspace_path) / (configured or DEFAULT_FOLDER))


def export_workspace(con, workspace_path: str | Path, config: EngineConfig) -> dict[str, str]:
    """Write the journey tables after ingest/refresh on a Spark workspace: through Spark to a URI
    (`engine.path: s3a://...` or `file:///...`), with DuckDB's COPY to a plain local folder."""
    folder = export_folder(config, workspace_path)
    if _URI.match(folder):
        session = spark_session_for(config)
        return write_journey_tables_with_spark(session, con, folder)
    return export_journey_tables(con, folder)


def drop_whole_exports(config: EngineConfig, workspace_path: str | Path) -> None:
    """Remove the journey tables written whole under a local or `file://` `engine.path` (a file each from DuckDB's
    COPY, a folder each from Spark's writer): a workspace whose analyses read the Spark state's files keeps no
    stale copy of every event beside them, nor of an erased person's."""
    folder = export_folder(config, workspace_path)
    if _URI.match(folder) and not folder.startswith("file://"):
        return
    local = Path(folder.removeprefix("file://"))
    for table in JOURNEY_TABLES:
        target = local / f"{table}.parquet"
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def spark_engine_for(con, workspace_path: str | Path, config: EngineConfig, export: bool = False) -> Engine:
    """The Spark engine of a workspace whose journeymap.yml says `engine: {backend: spark, ...}`, over the journey
    tables written whole.

    The tables are the Parquet that `refresh()` wrote; missing local files are exported now, and all of them
    with `export` (a workspace whose refresh no longer writes them: state.spark_tables.journey_engine)."""
    session = spark_session_for(config)
    folder = export_folder(config, workspace_path)
    if export:
        tables = export_workspace(con, workspace_path, config)
    elif _URI.match(folder):
        tables = {t: _spark_target(folder, t) for t in JOURNEY_TABLES}
    else:
        local = Path(folder.removeprefix("file://"))
        if all((local / f"{t}.parquet").is_file() for t in JOURNEY_TABLES):
            tables = {t: str((local / f"{t}.parquet").resolve()) for t in JOURNEY_TABLES}
        else:
            tables = export_journey_tables(con, local)
    for path in tables.values():
        try:
            session.catalog.refreshByPath(path)  # a re-export replaced the file under a cached listing
        except Exception:  # noqa: BLE001 - best effort; not every Connect server implements it
            pass
    return spark_engine(session, tables)
