"""Every Spark-side read and write of the lakehouse, through delta-spark. (Just over 300 lines on
purpose: the one module that touches Delta from Spark, so every write path reads in one place.)

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
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from delta.exceptions import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    DeltaConcurrentModificationException,
    MetadataChangedException,
    ProtocolChangedException,
)
from delta.tables import DeltaTable
from pyspark.errors import AnalysisException, PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hybridrec.errors import ConcurrentRunError, SchemaMismatchError, TableNotFoundError
from hybridrec.io import catalog
from hybridrec.io.storage import child, list_names, read_text, table_path
from hybridrec.schema import DS, TableSpec

log = logging.getLogger(__name__)

# Fixed on every table we create, so that readers without Spark (delta-rs) can always open them:
# nothing here rewrites rows, so deletion vectors would only raise the protocol.
TABLE_PROPERTIES = {"delta.enableDeletionVectors": "false"}
USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"
# delta-spark's Python exceptions for a lost commit race are siblings, not subclasses of one another.
CONCURRENT_COMMIT_ERRORS = (ConcurrentAppendException, ConcurrentDeleteDeleteException, ConcurrentDeleteReadException,
                            ConcurrentTransactionException, ConcurrentWriteException,
                            DeltaConcurrentModificationException, MetadataChangedException, ProtocolChangedException)
# MERGE and OPTIMIZE take the commit's metadata from the session conf, shared by threads.
_SESSION_METADATA_LOCK = threading.Lock()
_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")
# Tables this process has already created or checked against a contract (path, database, schema,
# migration allowed): checked once per process; Delta's own schema enforcement guards every write.
_ENSURED: set[tuple[str, str, str, bool]] = set()


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
    key = (path, database, spec.schema.json(), allow_migration)
    if key in _ENSURED:
        return path
    if not is_table(spark, path):
        builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(spec.schema).comment(spec.description)
        if spec.partition_by:
            builder = builder.partitionedBy(*spec.partition_by)
        for name, value in TABLE_PROPERTIES.items():
            builder = builder.property(name, value)
        try:
            builder.execute()
            log.info("created Delta table %s at %s", spec.name, path)
        except Exception:  # a second driver creating it first surfaces in several shapes
            # (a concurrent-commit error, an AnalysisException, or the LogStore's FileAlreadyExistsException
            # through py4j on S3): if the table exists now, it was made from the same contract.
            # The log is listed directly: Delta's cached snapshot of this path still says "no table".
            if not _log_versions(spark, path):
                raise
            spark.sparkContext._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
            log.info("table %s was created by a concurrent run", spec.name)  # theirs is ours: same contract
    _check_stored_schema(spark, path, spec, allow_migration=allow_migration)
    if database:
        catalog.register_table(spark, database, spec, path)
    _ENSURED.add(key)
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
    except CONCURRENT_COMMIT_ERRORS as exc:
        raise ConcurrentRunError(
            f"table {spec.name!r}, {where}: another run committed a conflicting change while run {run_id} was "
            f"writing ({type(exc).__name__}); nothing of run {run_id} was committed to it") from exc
    except AnalysisException as exc:
        if "DELTA_REPLACE_WHERE_MISMATCH" in str(exc) or "does not conform to partial table overwrite" in str(exc):
            raise SchemaMismatchError(f"table {spec.name!r}: rows outside partition {DS}={ds}; nothing was "
                                      f"committed") from exc
        raise


@dataclass(frozen=True)
class Commit:
    version: int
    operation: str
    user_metadata: dict[str, str]   # the JSON this module tags commits with ({} for others)
    metrics: dict[str, str]


def commits(spark: SparkSession, path: str, *, after: int = -1, newest: int | None = None) -> list[Commit]:
    """The commits of the table after version `after` (only the `newest` ones when given), oldest first.

    Read straight from `_delta_log/<version>.json` (the commitInfo action of Delta's log protocol)
    through Hadoop's FileSystem: the same answer as DESCRIBE HISTORY without a Spark job, which is
    what makes checking a run's claim before every write cheap."""
    versions = [v for v in _log_versions(spark, path) if v > after]
    return [_commit(spark, path, v) for v in (versions[-newest:] if newest else versions)]


def _log_versions(spark: SparkSession, path: str) -> list[int]:
    names = list_names(spark, child(path, "_delta_log"))
    return sorted(int(m.group(1)) for name in names if (m := _COMMIT_FILE.match(name)))


def _commit(spark: SparkSession, path: str, version: int) -> Commit:
    info: dict[str, Any] = {}
    for line in read_text(spark, child(path, "_delta_log", f"{version:020d}.json")).splitlines():
        if '"commitInfo"' in line:
            info = json.loads(line).get("commitInfo") or {}
            break
    try:
        metadata = json.loads(info.get("userMetadata") or "{}")
    except json.JSONDecodeError:
        metadata = {}
    return Commit(version, info.get("operation", ""), metadata if isinstance(metadata, dict) else {},
                  info.get("operationMetrics") or {})


def own_commit(spark: SparkSession, path: str, metadata: str) -> tuple[int, int]:
    """(version, rows written) of the newest commit carrying `metadata` (looked for among the 20 newest,
    newest first: normally the first file read); (current version, 0) when Delta made none."""
    versions = _log_versions(spark, path)
    wanted = json.loads(metadata)
    for version in reversed(versions[-20:]):
        commit = _commit(spark, path, version)
        if commit.user_metadata == wanted:
            rows = commit.metrics.get("numOutputRows") or commit.metrics.get("numTargetRowsInserted") or "0"
            return version, int(rows)
    return (versions[-1] if versions else -1), 0


def append_rows(spark: SparkSession, rows: list[dict[str, Any]], root: str, spec: TableSpec, *, run_id: str,
                database: str = "", **tags: Any) -> int:
    """Append a few driver-side rows (run records, metrics) in one commit, its `userMetadata` carrying
    `tags` besides the run id; returns the commit's version."""
    path = ensure_table(spark, root, spec, database=database)
    frame = spark.createDataFrame([tuple(r.get(c) for c in spec.columns) for r in rows], spec.schema)
    metadata = commit_metadata(run_id, table=spec.name, **tags)
    _commit_frame(frame, path, spec, metadata, ds=None, run_id=run_id)
    return own_commit(spark, path, metadata)[0]


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
    return commits(spark, path, newest=1)[-1].version


def partitions(spark: SparkSession, root: str, spec: TableSpec) -> list[date]:
    """The run dates with rows in a partitioned table, oldest first."""
    path = table_path(root, spec.name)
    if not is_table(spark, path):
        return []
    return sorted(r[DS] for r in spark.read.format("delta").load(path).select(DS).distinct().collect())


def describe_error(exc: PySparkException) -> str:
    """One line of a Spark/Delta error, without the JVM stack."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
