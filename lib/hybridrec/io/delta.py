"""Every Spark-side read and write of the lakehouse, through delta-spark.

Writes are single Delta commits tagged with the run (`userMetadata`, shown by DESCRIBE HISTORY):
a partitioned table replaces its `ds` with `replaceWhere` (Delta checks every row belongs to it and
swaps the partition atomically, so a re-run is one new version, never doubled rows), `runs` and
`metrics` append, and `item_embeddings` grows by MERGE on its key. Concurrent writers are judged by
Delta's optimistic concurrency: a conflicting commit raises, translated here into
ConcurrentRunError naming the table and ds. Tables are created on first write with their contract
(column comments, description, partitioning) and registered in the Spark catalog (io.catalog).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from delta.exceptions import DeltaConcurrentModificationException
from delta.tables import DeltaTable
from pyspark.errors import AnalysisException, PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hybridrec.errors import ConcurrentRunError, SchemaMismatchError, TableNotFoundError
from hybridrec.io import catalog
from hybridrec.io.storage import table_path
from hybridrec.schema import DS, TableSpec

log = logging.getLogger(__name__)

# Fixed on every table we create, so that readers without Spark (delta-rs) can always open them:
# nothing here rewrites rows, so deletion vectors would only raise the protocol.
TABLE_PROPERTIES = {"delta.enableDeletionVectors": "false"}
USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"
# MERGE and OPTIMIZE take the commit's metadata from the session conf, shared by threads.
_SESSION_METADATA_LOCK = threading.Lock()


@dataclass(frozen=True)
class WriteResult:
    table: str
    version: int
    rows: int


def commit_metadata(run_id: str, **extra: Any) -> str:
    """The `userMetadata` of a commit: the run id first, then what else identifies the write."""
    return json.dumps({"run_id": run_id, **{k: str(v) for k, v in extra.items()}}, separators=(",", ":"))


def check_schema(df: DataFrame, spec: TableSpec) -> None:
    """Column names, order and types must equal the contract (nullability is the contract's)."""
    found = [(f.name, f.dataType.simpleString()) for f in df.schema.fields]
    expected = [(f.name, f.dataType.simpleString()) for f in spec.schema.fields]
    if found != expected:
        raise SchemaMismatchError(f"table {spec.name!r}: expected columns {expected}, found {found}")


def sql_path(path: str) -> str:
    """`delta.\\`path\\`` for SQL statements."""
    return "delta.`" + path.replace("`", "``") + "`"


def is_table(spark: SparkSession, path: str) -> bool:
    return bool(DeltaTable.isDeltaTable(spark, path))


@contextmanager
def session_commit_metadata(spark: SparkSession, metadata: str) -> Iterator[None]:
    """Tags the commits made inside (MERGE, OPTIMIZE, ALTER) with `metadata`."""
    with _SESSION_METADATA_LOCK:
        spark.conf.set(USER_METADATA_CONF, metadata)
        try:
            yield
        finally:
            spark.conf.unset(USER_METADATA_CONF)


def ensure_table(spark: SparkSession, root: str, spec: TableSpec, *, allow_migration: bool = False,
                 database: str = "") -> str:
    """The table's path; created with its contract when missing, its stored schema checked (and
    migrated when allowed), and registered in the catalog database when one is configured."""
    path = table_path(root, spec.name)
    if not is_table(spark, path):
        builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(spec.schema).comment(spec.description)
        if spec.partition_by:
            builder = builder.partitionedBy(*spec.partition_by)
        for key, value in TABLE_PROPERTIES.items():
            builder = builder.property(key, value)
        try:
            builder.execute()
            log.info("created Delta table %s at %s", spec.name, path)
        except (DeltaConcurrentModificationException, AnalysisException):
            if not is_table(spark, path):
                raise
            log.info("table %s was created by a concurrent run", spec.name)  # theirs is ours: same contract
    _check_stored_schema(spark, path, spec, allow_migration=allow_migration)
    if database:
        catalog.register_table(spark, database, spec, path)
    return path


def _check_stored_schema(spark: SparkSession, path: str, spec: TableSpec, *, allow_migration: bool) -> None:
    """The stored schema must equal the contract. With `allow_migration`, a contract that only adds
    nullable columns at the end is applied first (older rows read them as null); any other difference
    is refused, because rewriting published nights is not something a nightly run should do."""
    stored = DeltaTable.forPath(spark, path).toDF().schema
    found = [(f.name, f.dataType.simpleString()) for f in stored.fields]
    want = [(f.name, f.dataType.simpleString()) for f in spec.schema.fields]
    if found == want:
        return
    added = spec.schema.fields[len(found):]
    additive = want[:len(found)] == found and all(f.nullable for f in added)
    if additive and allow_migration:
        log.warning("table %s: migrating schema, adding column(s) %s", spec.name, [f.name for f in added])
        columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()} COMMENT '{_quote(f.metadata.get('comment', ''))}'"
                            for f in added)
        spark.sql(f"ALTER TABLE {sql_path(path)} ADD COLUMNS ({columns})")
        return
    hint = ("run with --migrate-schema (lakehouse.allow_schema_migration=true) to add them" if additive else
            "only new nullable columns at the end can be migrated; rebuild the table to change others")
    raise SchemaMismatchError(f"Delta table at {path}: stored schema {found} differs from the contract {want}; {hint}")


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def write_table(df: DataFrame, root: str, spec: TableSpec, *, run_id: str, ds: date | None = None,
                allow_schema_migration: bool = False, database: str = "") -> WriteResult:
    """Write `df` to the table of `spec` in one Delta commit tagged with `run_id`.

    `spec.write_mode`: `replace_partition` (needs `ds`; every row must belong to it), `append`, or
    `merge` (insert rows whose `spec.merge_keys` are not in the table yet).
    """
    check_schema(df, spec)
    if spec.write_mode == "replace_partition" and ds is None:
        raise ValueError(f"table {spec.name!r} replaces a partition: pass ds")
    spark = df.sparkSession
    path = ensure_table(spark, root, spec, allow_migration=allow_schema_migration, database=database)
    metadata = commit_metadata(run_id, table=spec.name, **({"ds": ds} if ds else {}))
    _commit_frame(df, path, spec, metadata, ds=ds, run_id=run_id)
    version, rows = own_commit(spark, path, metadata)
    log.info("wrote %s version %d: %d rows (%s)", spec.name, version, rows, f"ds {ds}" if ds else "whole table")
    return WriteResult(spec.name, version, rows)


def _commit_frame(df: DataFrame, path: str, spec: TableSpec, metadata: str, *, ds: date | None, run_id: str) -> None:
    """The one place a DataFrame becomes a Delta commit (the crash tests kill the process in here)."""
    where = f"ds {ds}" if ds else "the table"
    try:
        if spec.write_mode == "replace_partition":
            (df.write.format("delta").mode("overwrite").option("replaceWhere", f"{DS} = DATE'{ds.isoformat()}'")
             .option("userMetadata", metadata).save(path))
        elif spec.write_mode == "append":
            df.write.format("delta").mode("append").option("userMetadata", metadata).save(path)
        else:
            condition = " AND ".join(f"t.{k} = s.{k}" for k in spec.merge_keys)
            with session_commit_metadata(df.sparkSession, metadata):
                DeltaTable.forPath(df.sparkSession, path).alias("t").merge(df.alias("s"), condition) \
                    .whenNotMatchedInsertAll().execute()
    except DeltaConcurrentModificationException as exc:
        raise ConcurrentRunError(
            f"table {spec.name!r}, {where}: another run committed a conflicting change while run {run_id} was "
            f"writing ({type(exc).__name__}); nothing of run {run_id} was committed to it") from exc
    except AnalysisException as exc:
        if "DELTA_REPLACE_WHERE_MISMATCH" in str(exc) or "does not conform to partial table overwrite" in str(exc):
            raise SchemaMismatchError(f"table {spec.name!r}: rows outside partition {DS}={ds}; nothing was "
                                      f"committed") from exc
        raise


def own_commit(spark: SparkSession, path: str, metadata: str) -> tuple[int, int]:
    """(version, rows written) of the newest commit carrying `metadata`; (current version, 0) when
    Delta made none (nothing to add and nothing to replace)."""
    history = DeltaTable.forPath(spark, path).history(20).select("version", "userMetadata", "operationMetrics")
    rows = history.orderBy(F.col("version").desc()).collect()
    row = next((r for r in rows if r["userMetadata"] == metadata), None)
    if row is None:
        return int(rows[0]["version"]), 0
    metrics = row["operationMetrics"] or {}
    rows = metrics.get("numOutputRows") or metrics.get("numTargetRowsInserted") or "0"
    return int(row["version"]), int(rows)


def append_rows(spark: SparkSession, rows: list[dict[str, Any]], root: str, spec: TableSpec, *, run_id: str,
                database: str = "") -> None:
    """Append a few driver-side rows (run records, metrics) in one commit."""
    path = ensure_table(spark, root, spec, database=database)
    frame = spark.createDataFrame([tuple(r.get(c) for c in spec.columns) for r in rows], spec.schema)
    _commit_frame(frame, path, spec, commit_metadata(run_id, table=spec.name), ds=None, run_id=run_id)


def read_table(spark: SparkSession, root: str, spec: TableSpec, *, ds: date | str | None = None,
               version: int | None = None, required: bool = True) -> DataFrame:
    """The table (optionally one ds, optionally as of an older version) with the contract's columns;
    contract columns a table predates (before a schema migration) read as null."""
    path = table_path(root, spec.name)
    if not is_table(spark, path):
        if required:
            raise TableNotFoundError(f"Delta table {spec.name!r} not found at {path}; run the step that writes it")
        return spark.createDataFrame([], spec.schema)
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    df = reader.load(path)
    if ds is not None:
        df = df.where(F.col(DS) == F.lit(str(ds)).cast("date"))
        if required and df.isEmpty():
            raise TableNotFoundError(f"Delta table {spec.name!r} has no partition {DS}={ds} at {path}")
    present = set(df.columns)
    return df.select(*[F.col(f.name) if f.name in present else F.lit(None).cast(f.dataType).alias(f.name)
                       for f in spec.schema.fields])


def table_version(spark: SparkSession, root: str, spec: TableSpec) -> int | None:
    path = table_path(root, spec.name)
    if not is_table(spark, path):
        return None
    return int(DeltaTable.forPath(spark, path).history(1).first()["version"])


def partitions(spark: SparkSession, root: str, spec: TableSpec) -> list[date]:
    """The run dates with rows in a partitioned table, oldest first."""
    path = table_path(root, spec.name)
    if not is_table(spark, path):
        return []
    return sorted(r[DS] for r in spark.read.format("delta").load(path).select(DS).distinct().collect())


def describe_error(exc: PySparkException) -> str:
    """One line of a Spark/Delta error, without the JVM stack."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
