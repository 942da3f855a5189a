"""The analysts' surface over the Delta tables: Spark SQL views, and Spark-free readers
(pandas and DuckDB through delta-rs) for notebooks and the `show` command.

Every reader goes through the Delta log, so only committed files are seen: a run that failed or
was refused by the quality gate is invisible here.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow.dataset as pads
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFoundError

from hybridrec import schema as S
from hybridrec.errors import TableNotFoundError
from hybridrec.io.delta import arrow_schema, read_table, table_path

if TYPE_CHECKING:
    import duckdb
    from pyspark.sql import SparkSession

# view name -> table; `recommendations_latest` and `items` are derived from these.
VIEW_TABLES = {"recommendations": S.RECOMMENDATIONS, "metrics": S.METRICS, "runs": S.RUNS, "items": S.ITEMS}
VIEWS = ("recommendations", "recommendations_latest", "metrics", "runs", "items")


def delta_table(lakehouse_root: str, spec: S.TableSpec) -> DeltaTable:
    path = table_path(lakehouse_root, spec)
    try:
        return DeltaTable(path)
    except DeltaTableNotFoundError as exc:
        raise TableNotFoundError(f"Delta table {spec.name!r} not found at {path}; run the pipeline first") from exc


def table_contract(lakehouse_root: str, spec: S.TableSpec) -> dict:
    """What the Delta log itself says about a table: name, description, partitioning, columns with comments."""
    dt = delta_table(lakehouse_root, spec)
    meta = dt.metadata()
    return {
        "name": meta.name, "description": meta.description, "partition_by": list(meta.partition_columns),
        "columns": [(f.name, str(f.type), f.metadata.get("comment")) for f in dt.schema().fields],
    }


def newest_partition(lakehouse_root: str, spec: S.TableSpec) -> str | None:
    """The newest ds with live files (from the log only), or None without table or partitions."""
    try:
        partitions = delta_table(lakehouse_root, spec).partitions()
    except TableNotFoundError:
        return None
    return max((p[S.DS] for p in partitions), default=None)


def published_days(lakehouse_root: str) -> list[date]:
    """Run dates with a published recommendations partition, oldest first (from the log only)."""
    try:
        partitions = delta_table(lakehouse_root, S.RECOMMENDATIONS).partitions()
    except TableNotFoundError:
        return []
    return sorted(date.fromisoformat(p[S.DS]) for p in partitions)


def latest_published_ds(lakehouse_root: str) -> date:
    newest = newest_partition(lakehouse_root, S.RECOMMENDATIONS)
    if newest is None:
        raise TableNotFoundError(f"no published night in {table_path(lakehouse_root, S.RECOMMENDATIONS)}")
    return date.fromisoformat(newest)


def dataset(lakehouse_root: str, spec: S.TableSpec) -> pads.Dataset:
    """The table's live files as a pyarrow dataset (filters push down to partitions and row groups)."""
    return delta_table(lakehouse_root, spec).to_pyarrow_dataset()


# ---- Spark SQL --------------------------------------------------------------------------------

def register_views(spark: SparkSession, lakehouse_root: str) -> list[str]:
    """Temporary views: recommendations (every ds), recommendations_latest (newest published ds),
    metrics, runs, and items (the catalogue snapshot of the newest ds). Returns their names."""
    for name, spec in VIEW_TABLES.items():
        value = newest_partition(lakehouse_root, spec) if name == "items" else None
        read_table(spark, lakehouse_root, spec, partition_value=value, required=False).createOrReplaceTempView(name)
    newest = newest_partition(lakehouse_root, S.RECOMMENDATIONS)
    read_table(spark, lakehouse_root, S.RECOMMENDATIONS, partition_value=newest,
               required=False).createOrReplaceTempView("recommendations_latest")
    return list(VIEWS)


# ---- pandas and DuckDB, no Spark --------------------------------------------------------------

def read_pandas(lakehouse_root: str, spec: S.TableSpec, *, ds: date | None = None, **filters) -> pd.DataFrame:
    """One table (optionally one ds, and equality filters on other columns) as pandas, via delta-rs."""
    expression = None
    for column, value in {**({S.DS: ds} if ds is not None else {}), **filters}.items():
        term = pads.field(column) == value
        expression = term if expression is None else expression & term
    return dataset(lakehouse_root, spec).to_table(filter=expression).to_pandas()


def duckdb_connection(lakehouse_root: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the same five views as `register_views`, over the Delta live files."""
    import duckdb

    con = duckdb.connect()
    for name, spec in VIEW_TABLES.items():
        try:
            source = dataset(lakehouse_root, spec)
        except TableNotFoundError:
            source = arrow_schema(spec).empty_table()  # not written yet: an empty view with the contract
        con.register(f"{name}_all" if name in ("items", "recommendations") else name, source)
    for view, spec in (("items", S.ITEMS), ("recommendations_latest", S.RECOMMENDATIONS)):
        newest = newest_partition(lakehouse_root, spec)
        where = f"ds = DATE '{newest}'" if newest else "false"
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM {spec.name}_all WHERE {where}")
    con.execute("CREATE VIEW recommendations AS SELECT * FROM recommendations_all")
    return con


def user_list(lakehouse_root: str, user_id: str, ds: date | None = None) -> pd.DataFrame:
    """One user's list for ds (default: the newest published) with titles and the reason's title."""
    ds = ds or latest_published_ds(lakehouse_root)
    recs = read_pandas(lakehouse_root, S.RECOMMENDATIONS, ds=ds, user_id=user_id)
    if recs.empty:
        raise TableNotFoundError(f"no recommendations for user {user_id!r} on ds {ds}")
    items = read_pandas(lakehouse_root, S.ITEMS, ds=ds)[[S.ITEM_ID, S.TITLE]]
    titles = dict(zip(items[S.ITEM_ID], items[S.TITLE], strict=True))
    recs = recs.sort_values(S.RANK)
    return pd.DataFrame({
        S.RANK: recs[S.RANK].to_numpy(),
        S.ITEM_ID: recs[S.ITEM_ID].to_numpy(),
        S.TITLE: recs[S.ITEM_ID].map(titles).to_numpy(),
        S.SCORE: recs[S.SCORE].to_numpy(),
        S.ALS_SCORE: recs[S.ALS_SCORE].to_numpy(),
        S.CONTENT_SCORE: recs[S.CONTENT_SCORE].to_numpy(),
        S.STRATEGY: recs[S.STRATEGY].to_numpy(),
        "because_you_liked": recs[S.REASON_ITEM_ID].map(lambda i: titles.get(i, i) if i else None).to_numpy(),
    })


def format_user_list(user_id: str, ds: date, rows: pd.DataFrame) -> str:
    lines = [f"user {user_id}, ds {ds}: {len(rows)} recommendations", ""]
    for r in rows.itertuples(index=False):
        parts = [f"{r.score:+.3f}"]
        if pd.notna(r.als_score):
            parts.append(f"als {r.als_score:.3f}")
        if pd.notna(r.content_score):
            parts.append(f"content {r.content_score:.3f}")
        reason = f"  because you liked {r.because_you_liked}" if r.because_you_liked else ""
        lines.append(f"{r.rank:>3}. {r.title or '?'} [{r.item_id}]  ({', '.join(parts)}; {r.strategy}){reason}")
    return "\n".join(lines)
