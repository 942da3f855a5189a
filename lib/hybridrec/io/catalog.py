"""The lakehouse's tables in the Spark catalog: database `lakehouse.catalog_database` (default
`hybridrec`), one external Delta table per contract, plus `recommendations_latest` and `items_latest`
views. Then `SELECT * FROM hybridrec.recommendations_latest`, `DESCRIBE HISTORY hybridrec.runs` and
`SELECT ... VERSION AS OF n` work in Spark SQL, and DESCRIBE TABLE EXTENDED shows the comments.

Spark's built-in catalog lives in the application (no Hive metastore needed), so each session
registers the tables it writes, and `register_lakehouse` registers everything at once (the `sql`
command and notebooks call it). With a persistent metastore (Hive, Glue: spark.sql.catalogImplementation
=hive), the same statements are idempotent and the tables stay registered between applications.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from hybridrec.io.storage import table_path

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from hybridrec.schema import TableSpec

log = logging.getLogger(__name__)

# (application id, database, table) -> the path this process registered it with.
_REGISTERED: dict[tuple[str, str, str], str] = {}
# Runs started in threads of one application share its catalog: check-then-create must not interleave.
_CATALOG_LOCK = threading.RLock()

# view -> (table, what it shows); the newest ds of a partitioned table.
LATEST_VIEWS = {
    "recommendations_latest": ("recommendations", "Recommendations of the newest published run date."),
    "items_latest": ("items", "The catalogue snapshot of the newest run date."),
}


def _same_location(a: str, b: str) -> bool:
    def norm(p: str) -> str:
        return p.removeprefix("file:").replace("///", "/").rstrip("/")
    return norm(a) == norm(b)


def _location(spark: SparkSession, qualified: str) -> str | None:
    rows = [r for r in spark.sql(f"DESCRIBE TABLE EXTENDED {qualified}").collect() if r[0] == "Location"]
    return rows[0][1] if rows else None


def register_table(spark: SparkSession, database: str, spec: TableSpec, path: str) -> None:
    """`database.<table>` points at `path` (an external table: dropping it never deletes data)."""
    with _CATALOG_LOCK:
        _register_table(spark, database, spec, path)


def _register_table(spark: SparkSession, database: str, spec: TableSpec, path: str) -> None:
    key = (spark.sparkContext.applicationId, database, spec.name)
    if _REGISTERED.get(key) == path:
        return
    qualified = f"`{database}`.`{spec.name}`"
    if not spark.catalog.databaseExists(database):
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}` COMMENT 'hybridrec lakehouse tables'")
    if spark.catalog.tableExists(f"{database}.{spec.name}"):
        location = _location(spark, qualified)
        if location is not None and _same_location(location, path):
            _REGISTERED[key] = path
            return
        log.info("catalog table %s pointed at %s; re-pointing it to %s", qualified, location, path)
        spark.sql(f"DROP TABLE {qualified}")  # external: only the catalog entry goes
    escaped, comment = (text.replace("\\", "\\\\").replace("'", "\\'") for text in (path, spec.description))
    spark.sql(f"CREATE TABLE IF NOT EXISTS {qualified} USING DELTA COMMENT '{comment}' LOCATION '{escaped}'")
    for view, (table, comment) in LATEST_VIEWS.items():
        if table == spec.name:
            spark.sql(f"CREATE OR REPLACE VIEW `{database}`.`{view}` COMMENT '{comment}' AS "
                      f"SELECT * FROM {qualified} WHERE ds = (SELECT max(ds) FROM {qualified})")
    _REGISTERED[key] = path


def register_lakehouse(spark: SparkSession, root: str, database: str) -> list[str]:
    """Registers every table that exists under `root`; returns the qualified names of tables and views."""
    from hybridrec.io.delta import is_table
    from hybridrec.schema import TABLES

    names = []
    for spec in TABLES.values():
        path = table_path(root, spec.name)
        if is_table(spark, path):
            register_table(spark, database, spec, path)
            names.append(f"{database}.{spec.name}")
            names += [f"{database}.{v}" for v, (t, _) in LATEST_VIEWS.items() if t == spec.name]
    return names
