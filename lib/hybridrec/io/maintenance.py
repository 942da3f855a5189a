"""`hybridrec vacuum` and `hybridrec optimize`: Delta's own VACUUM and OPTIMIZE on every table,
with the lakehouse's safety rules on top.

Vacuum: a dry run unless told; a retention below `lakehouse.vacuum_min_retention_hours` is refused
(files of a night still being written are uncommitted and young: a retention longer than any run
keeps them, which is the only guard object storage needs); the lakehouse root must be a dedicated
folder; and on local disk a table is skipped whole when any file VACUUM would delete resolves
outside its folder (a symlink), so nothing outside the lakehouse is ever deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from delta.tables import DeltaTable

from hybridrec.errors import UnsafePathError, VacuumRefusedError
from hybridrec.io.delta import commit_metadata, is_table, session_commit_metadata, sql_path
from hybridrec.io.paths import checked_lakehouse_root, resolve_inside
from hybridrec.io.storage import is_remote, table_path
from hybridrec.schema import TABLES, USER_ID

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


@dataclass
class VacuumReport:
    table: str
    files: list[str] = field(default_factory=list)      # what VACUUM lists, relative to the table folder
    refused: list[str] = field(default_factory=list)    # local files resolving outside the table: table skipped
    deleted: bool = False


def _relative(uri: str, folder: str) -> str:
    local = uri.removeprefix("file:")
    base = folder.removeprefix("file:").rstrip("/") + "/"
    return local.split(base, 1)[1] if base in local else local


def vacuum_table(spark: SparkSession, root: str, table: str, *, retention_hours: float, dry_run: bool) -> VacuumReport:
    folder = table_path(root, table)
    report = VacuumReport(table)
    if not is_table(spark, folder):
        return report
    listed = spark.sql(f"VACUUM {sql_path(folder)} RETAIN {retention_hours} HOURS DRY RUN").collect()
    report.files = sorted(_relative(r[0], folder) for r in listed)
    if not is_remote(folder):
        for relative in report.files:
            try:
                resolve_inside(Path(folder) / relative, folder)
            except UnsafePathError as exc:
                log.warning("%s", exc)
                report.refused.append(relative)
    if dry_run or report.refused or not report.files:
        return report
    with session_commit_metadata(spark, commit_metadata("maintenance", command="vacuum")):
        spark.sql(f"VACUUM {sql_path(folder)} RETAIN {retention_hours} HOURS")
    report.deleted = True
    return report


def vacuum_lakehouse(spark: SparkSession, root: str, *, retention_hours: float, dry_run: bool,
                     min_retention_hours: float) -> list[VacuumReport]:
    if not is_remote(root):
        checked_lakehouse_root(root)
    if retention_hours < min_retention_hours:
        raise VacuumRefusedError(
            f"retention {retention_hours} h is below lakehouse.vacuum_min_retention_hours={min_retention_hours}: "
            "files of a night being written now are not committed yet and would be deleted")
    return [vacuum_table(spark, root, name, retention_hours=retention_hours, dry_run=dry_run) for name in TABLES]


@dataclass
class OptimizeReport:
    table: str
    files_removed: int
    files_added: int
    zorder_by: str | None


def optimize_lakehouse(spark: SparkSession, root: str, *, tables: list[str] | None = None, ds: str | None = None,
                       zorder: bool = False) -> list[OptimizeReport]:
    """Compacts small files (per ds when given); with `zorder`, tables with user_id are Z-ordered on it
    (one user's rows in few files: fast per-user lookups by readers that skip files)."""
    unknown = sorted(set(tables or []) - set(TABLES))
    if unknown:
        raise ValueError(f"optimize: unknown table(s) {unknown}; expected some of {sorted(TABLES)}")
    reports = []
    for name in tables or list(TABLES):
        spec, path = TABLES[name], table_path(root, name)
        if not is_table(spark, path):
            continue
        builder = DeltaTable.forPath(spark, path).optimize()
        if ds and spec.partition_by:
            builder = builder.where(f"ds = DATE'{ds}'")
        order = USER_ID if zorder and USER_ID in spec.columns else None
        with session_commit_metadata(spark, commit_metadata("maintenance", command="optimize")):
            result = builder.executeZOrderBy(order) if order else builder.executeCompaction()
        metrics = result.first()["metrics"]
        reports.append(OptimizeReport(name, int(metrics["numFilesRemoved"]), int(metrics["numFilesAdded"]), order))
    return reports
