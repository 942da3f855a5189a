"""Delta tables through delta-rs: Spark writes Parquet in parallel, delta-rs commits atomically.

Write path: Spark writes the DataFrame as Parquet into `<table>/_staging/<uuid>/`; the files are
moved to their Hive-style place in the table folder (a rename on a local or mounted filesystem) and
committed in one Delta transaction. Until that commit no reader sees them: readers only open the
files the log lists. `replace_partition` removes the partition's old files and adds the new ones in
the same commit, so a re-run of a ds is one new version, never a duplicate or a half-written night.

Read path: Spark opens exactly the live files (`DeltaTable.file_uris`) with `basePath` set, so the
partition column comes back from the folder names.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, Field, Schema, write_deltalake
from deltalake.exceptions import DeltaError
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFoundError
from deltalake.transaction import AddAction, CommitProperties, create_table_with_add_actions
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import to_arrow_schema

from hybridrec.errors import SchemaMismatchError, TableNotFoundError
from hybridrec.io.paths import resolve_inside
from hybridrec.schema import TableSpec

log = logging.getLogger(__name__)

STAGING_DIR = "_staging"


@dataclass(frozen=True)
class WriteResult:
    table: str
    version: int
    files: int
    rows: int


def table_path(lakehouse_root: str, spec: TableSpec) -> str:
    return str(Path(lakehouse_root).expanduser().resolve() / spec.name)


def check_schema(df: DataFrame, spec: TableSpec) -> None:
    """Column names, order and types must equal the contract (nullability is the contract's)."""
    found = [(f.name, f.dataType.simpleString()) for f in df.schema.fields]
    expected = [(f.name, f.dataType.simpleString()) for f in spec.schema.fields]
    if found != expected:
        raise SchemaMismatchError(
            f"table {spec.name!r}: expected columns {expected}, found {found}"
        )


def arrow_schema(spec: TableSpec) -> pa.Schema:
    """The contract as Arrow; each column's comment becomes Delta field metadata `comment` (the key
    Spark and Databricks show in DESCRIBE), so readers of the log can discover it."""
    arrow = to_arrow_schema(spec.schema, timezone="UTC")
    return pa.schema([
        pa.field(f.name, f.type, f.nullable, metadata={"comment": field.metadata.get("comment", "")})
        for f, field in zip(arrow, spec.schema.fields, strict=True)
    ])


def _delta_table(path: str, version: int | None = None) -> DeltaTable | None:
    try:
        return DeltaTable(path, version=version)
    except DeltaTableNotFoundError:
        return None


def _check_existing_schema(dt: DeltaTable, spec: TableSpec, path: str, *, allow_migration: bool = False) -> None:
    """The stored schema must equal the contract. With `allow_migration`, a contract that only adds
    nullable columns at the end is applied first (old files read those columns as null); any other
    difference is refused, because rewriting published nights is not something a nightly run should do."""
    existing = pa.schema(dt.schema().to_arrow())
    expected = arrow_schema(spec)
    found = [(f.name, str(f.type)) for f in existing]
    want = [(f.name, str(f.type)) for f in expected]
    if found == want:
        return
    added = list(expected)[len(found):]
    additive = want[:len(found)] == found and all(f.nullable for f in added)
    if additive and allow_migration:
        log.warning("table %s: migrating schema, adding column(s) %s", spec.name, [f.name for f in added])
        dt.alter.add_columns([Field.from_arrow(f) for f in added])
        return
    hint = ("run with --migrate-schema (lakehouse.allow_schema_migration=true) to add them" if additive else
            "only new nullable columns at the end can be migrated; rebuild the table to change others")
    raise SchemaMismatchError(
        f"Delta table at {path}: stored schema {found} differs from the contract {want}; {hint}"
    )


def _partition_values(relative: str, partition_by: tuple[str, ...]) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for part in Path(relative).parts[:-1]:
        key, _, value = part.partition("=")
        values[key] = None if value == "__HIVE_DEFAULT_PARTITION__" else value
    missing = set(partition_by) - set(values)
    if missing:
        raise SchemaMismatchError(f"staged file {relative} lacks partition folder(s) {sorted(missing)}")
    return values


def _stage_and_move(df: DataFrame, path: str, spec: TableSpec) -> list[AddAction]:
    staging = Path(path) / STAGING_DIR / uuid.uuid4().hex
    writer = df.write.mode("error")
    if spec.partition_by:
        writer = writer.partitionBy(*spec.partition_by)
    actions: list[AddAction] = []
    try:
        writer.parquet(str(staging))
        for file in sorted(staging.rglob("*.parquet")):
            rows = pq.read_metadata(file).num_rows
            if rows == 0:
                continue  # Spark writes an empty file for an empty DataFrame
            relative = file.relative_to(staging).as_posix()
            target = Path(path) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(file, target)
            stat = target.stat()
            actions.append(AddAction(
                path=relative,
                size=stat.st_size,
                partition_values=_partition_values(relative, spec.partition_by),
                modification_time=int(stat.st_mtime * 1000),
                data_change=True,
                stats=json.dumps({"numRecords": rows}),
            ))
    except BaseException:
        _remove_files(path, actions)  # moved but never committed
        raise
    finally:
        shutil.rmtree(resolve_inside(staging, path), ignore_errors=True)
    return actions


def write_table(
    df: DataFrame,
    lakehouse_root: str,
    spec: TableSpec,
    *,
    run_id: str,
    partition_value: str | None = None,
    extra_metadata: dict[str, Any] | None = None,
    allow_schema_migration: bool = False,
) -> WriteResult:
    """Write `df` to the table of `spec` in one Delta commit tagged with `run_id`.

    `spec.write_mode` decides the commit: `replace_partition` (needs `partition_value`; every row
    must belong to it), `append`, or `overwrite` (the whole table). A changed contract is refused
    unless `allow_schema_migration` and the change only adds nullable columns.
    """
    check_schema(df, spec)
    if spec.write_mode == "replace_partition" and partition_value is None:
        raise ValueError(f"table {spec.name!r} replaces a partition: pass partition_value")
    path = table_path(lakehouse_root, spec)
    Path(path).mkdir(parents=True, exist_ok=True)
    dt = _delta_table(path)
    if dt is not None:
        _check_existing_schema(dt, spec, path, allow_migration=allow_schema_migration)
    actions = _stage_and_move(df, path, spec)
    if spec.write_mode == "replace_partition":
        stray = [a.path for a in actions if a.partition_values.get(spec.partition_by[0]) != partition_value]
        if stray:
            _remove_files(path, actions)
            raise SchemaMismatchError(
                f"table {spec.name!r}: rows outside partition {spec.partition_by[0]}={partition_value}: {stray[:3]}"
            )
    metadata = {"hybridrec.run_id": run_id, **(extra_metadata or {})}
    commit = CommitProperties(custom_metadata=metadata)
    schema = Schema.from_arrow(arrow_schema(spec))
    try:
        created = False
        if dt is None:
            dt, created = _create_table(path, spec, schema, actions, commit)
        if not created:
            _commit(dt, spec, schema, actions, commit, partition_value)
    except Exception:
        _remove_files(path, actions)  # never committed: nothing references them
        raise
    dt.update_incremental()
    rows = sum(json.loads(a.stats)["numRecords"] for a in actions)
    result = WriteResult(spec.name, dt.version(), len(actions), rows)
    log.info("wrote %s version %d: %d rows in %d files", spec.name, result.version, rows, len(actions))
    return result


def _create_table(path: str, spec: TableSpec, schema: Schema, actions: list[AddAction],
                  commit: CommitProperties) -> tuple[DeltaTable, bool]:
    """Create the table with `actions` as version 0 -> (table, True). If a concurrent run created it
    first -> (that table, False), and the caller commits the actions to it as usual."""
    try:
        create_table_with_add_actions(
            path, schema, actions, mode="error", partition_by=list(spec.partition_by) or None,
            name=spec.name, description=spec.description, commit_properties=commit,
        )
        return DeltaTable(path), True
    except DeltaError as exc:
        dt = _delta_table(path)
        if dt is None or "exists" not in str(exc).lower():
            raise
        log.info("table %s was created by a concurrent run; committing to it", spec.name)
        _check_existing_schema(dt, spec, path)
        return dt, False


def _commit(dt: DeltaTable, spec: TableSpec, schema: Schema, actions: list[AddAction],
            commit: CommitProperties, partition_value: str | None) -> None:
    if spec.write_mode == "replace_partition":
        dt.create_write_transaction(
            actions, mode="overwrite", schema=schema, partition_by=list(spec.partition_by),
            partition_filters=[(spec.partition_by[0], "=", partition_value)],
            commit_properties=commit,
        )
    else:
        dt.create_write_transaction(
            actions, mode=spec.write_mode, schema=schema,
            partition_by=list(spec.partition_by) or None, commit_properties=commit,
        )


def _remove_files(path: str, actions: list[AddAction]) -> None:
    for action in actions:
        resolve_inside(Path(path) / action.path, path).unlink(missing_ok=True)


def append_rows(rows: list[dict[str, Any]], lakehouse_root: str, spec: TableSpec, *, run_id: str) -> None:
    """Append a few driver-side rows (run records) without Spark."""
    path = table_path(lakehouse_root, spec)
    table = pa.Table.from_pylist(rows, schema=arrow_schema(spec))
    for attempt in (1, 2):
        dt = _delta_table(path)
        if dt is not None:
            _check_existing_schema(dt, spec, path)
        try:
            write_deltalake(
                path, table, mode="append", partition_by=list(spec.partition_by) or None,
                name=spec.name, description=spec.description,
                commit_properties=CommitProperties(custom_metadata={"hybridrec.run_id": run_id}),
            )
            return
        except DeltaError:
            if dt is not None or attempt == 2:
                raise
            # A concurrent run created the table between our check and our commit: append to it.


def read_table(
    spark: SparkSession,
    lakehouse_root: str,
    spec: TableSpec,
    *,
    partition_value: str | None = None,
    version: int | None = None,
    required: bool = True,
) -> DataFrame:
    """The live files of the table (optionally one partition, optionally an older version)."""
    path = table_path(lakehouse_root, spec)
    dt = _delta_table(path, version)
    if dt is None:
        if required:
            raise TableNotFoundError(f"Delta table {spec.name!r} not found at {path}; run the step that writes it")
        return spark.createDataFrame([], spec.schema)
    filters = [(spec.partition_by[0], "=", partition_value)] if partition_value is not None else None
    files = dt.file_uris(file_pruning_predicate=filters)
    if not files:
        if required and partition_value is not None:
            raise TableNotFoundError(
                f"Delta table {spec.name!r} has no partition {spec.partition_by[0]}={partition_value} at {path}"
            )
        return spark.createDataFrame([], spec.schema)
    return spark.read.schema(spec.schema).option("basePath", path).parquet(*files).select(*spec.columns)


def table_version(lakehouse_root: str, spec: TableSpec) -> int | None:
    dt = _delta_table(table_path(lakehouse_root, spec))
    return None if dt is None else dt.version()


def table_row_count(lakehouse_root: str, spec: TableSpec, partition_value: str | None = None) -> int | None:
    """Rows in the live files (from the log's per-file stats, no data read); None if no table."""
    dt = _delta_table(table_path(lakehouse_root, spec))
    if dt is None:
        return None
    actions = pa.table(dt.get_add_actions(flatten=True))
    if partition_value is not None and spec.partition_by:
        column = actions.column(f"partition.{spec.partition_by[0]}").to_pylist()
        keep = [str(v) == partition_value for v in column]
        actions = actions.filter(pa.array(keep, pa.bool_()))
    return int(sum(v or 0 for v in actions.column("num_records").to_pylist()))
