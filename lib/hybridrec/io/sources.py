"""Readers for input files (CSV, Parquet, Delta). Every column comes back as a string plus `source`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hybridrec.errors import MissingColumnError, SourceNotFoundError
from hybridrec.schema import SOURCE

SourceFormat = Literal["csv", "parquet", "delta"]


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _check_exists(path: str, what: str) -> None:
    if _is_local(path):
        local = Path(path.removeprefix("file://"))
        if not local.exists():
            raise SourceNotFoundError(f"{what} input {path!r} does not exist")
        if local.is_dir() and not any(p for p in local.rglob("*") if p.is_file()):
            raise SourceNotFoundError(f"{what} input {path!r} is an empty folder")


def read_source(
    spark: SparkSession,
    path: str,
    fmt: SourceFormat,
    *,
    what: str,
    required: list[str],
    rename: dict[str, str] | None = None,
) -> DataFrame:
    """Read `path`, rename columns, check `required` are present, cast all to string, add `source`.

    Strings keep bad values intact: they are parsed later and rows that fail go to quarantine
    with the raw value, instead of being nulled by a reader's type inference.
    """
    _check_exists(path, what)
    if fmt == "csv":
        df = (spark.read.option("header", True).option("multiLine", True).option("escape", '"')
              .option("mode", "PERMISSIVE").csv(path))
    elif fmt == "parquet":
        df = spark.read.parquet(path)
    else:
        files = DeltaTable(path).file_uris()
        if not files:
            raise SourceNotFoundError(f"{what} input {path!r} is a Delta table with no data files")
        df = spark.read.option("basePath", path).parquet(*files)
    for old, new in (rename or {}).items():
        if old in df.columns:
            df = df.withColumnRenamed(old, new)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise MissingColumnError(f"{what} input {path}", missing, df.columns)
    return df.select(
        *[F.col(c).cast("string").alias(c) for c in df.columns],
        F.col("_metadata.file_path").alias(SOURCE),
    )
