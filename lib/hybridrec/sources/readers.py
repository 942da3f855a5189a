"""Readers for input files (CSV, Parquet, Delta). Every column comes back as a string plus `source`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hybridrec.errors import EmptyInputError, InputHeaderError, InputTypeError, MissingColumnError, SourceNotFoundError
from hybridrec.schema import ITEM_ID, SOURCE, USER_ID
from hybridrec.sources.headers import header_problems

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
    allow_empty: bool = False,
    optional: tuple[str, ...] = (),
) -> DataFrame:
    """Read `path`, rename columns, check `required` are present and ids are strings or integers,
    refuse an input with no rows (unless `allow_empty`) or a header with a repeated, unnamed or
    mis-spelt (`optional` columns too) column, cast all to string, add `source`.

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
        from hybridrec.io.delta import is_table

        if not is_table(spark, path):
            raise SourceNotFoundError(f"{what} input {path!r} is not a Delta table (no _delta_log)")
        df = spark.read.format("delta").load(path)
    for old, new in (rename or {}).items():
        if old in df.columns:
            df = df.withColumnRenamed(old, new)
    if not df.columns:
        raise EmptyInputError(f"{what} input {path!r} is empty: no header and no rows")
    problems = header_problems(df.columns, [*required, *optional])
    if problems:
        raise InputHeaderError(f"{what} input {path}: " + "; ".join(problems) + f"; columns read: {df.columns}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise MissingColumnError(f"{what} input {path}{_delimiter_hint(df.columns)}", missing, df.columns)
    _check_id_types(df, path, what)
    if not allow_empty and df.isEmpty():
        raise EmptyInputError(f"{what} input {path!r} has a header but no rows")
    return df.select(
        *[F.col(c).cast("string").alias(c) for c in df.columns],
        F.col("_metadata.file_path").alias(SOURCE),
    )


def _delimiter_hint(columns: list[str]) -> str:
    if len(columns) == 1 and any(d in columns[0] for d in ";\t|"):
        return f" (one column {columns[0]!r}: is the file delimited by something other than ','?)"
    return ""


def _check_id_types(df: DataFrame, path: str, what: str) -> None:
    """Ids must be strings or integers: a float id (12.0) would never match the same id elsewhere."""
    for field in df.schema.fields:
        if field.name in (USER_ID, ITEM_ID) and field.dataType.typeName() not in (
                "string", "varchar", "char", "integer", "long", "short", "byte"):
            raise InputTypeError(
                f"{what} input {path}: column {field.name!r} must hold strings or integers, "
                f"found {field.dataType.simpleString()}")
