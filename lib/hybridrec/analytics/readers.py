"""Readers without Spark: pandas and DuckDB over the Delta tables through delta-rs,
on local disk or object storage, for notebooks and the `show` command. (In Spark, the tables are in
the catalog: see hybridrec.io.catalog and `hybridrec sql`.)

Every reader goes through the Delta log, so only committed versions are seen: a run that failed or
was refused by the quality gate is invisible here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError as DeltaTableNotFoundError

from hybridrec import schema as S
from hybridrec.errors import TableNotFoundError
from hybridrec.io.catalog import LATEST_VIEWS
from hybridrec.io.storage import is_remote, table_path

if TYPE_CHECKING:
    import duckdb

    from hybridrec.config import Config


@dataclass(frozen=True)
class Lakehouse:
    """Where the tables are, and how delta-rs reaches them (object storage settings)."""
    root: str
    storage_options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Config) -> Lakehouse:
        s3, options = cfg.s3, {}
        if is_remote(cfg.lakehouse.root):
            options = {"AWS_REGION": s3.region}
            if s3.endpoint:
                options.update(AWS_ENDPOINT_URL=s3.endpoint, AWS_ALLOW_HTTP=str(s3.endpoint.startswith("http:")).lower())
            if s3.path_style_access:
                options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
            if s3.access_key:
                options.update(AWS_ACCESS_KEY_ID=s3.access_key, AWS_SECRET_ACCESS_KEY=s3.secret_key)
        return cls(cfg.lakehouse.root, options)

    def uri(self, spec: S.TableSpec) -> str:
        path = table_path(self.root, spec.name)
        return "s3://" + path.removeprefix("s3a://") if path.startswith("s3a://") else path


def _lake(lake: Lakehouse | str) -> Lakehouse:
    return lake if isinstance(lake, Lakehouse) else Lakehouse(lake)


def delta_table(lake: Lakehouse | str, spec: S.TableSpec, version: int | None = None) -> DeltaTable:
    lake = _lake(lake)
    try:
        return DeltaTable(lake.uri(spec), version=version, storage_options=lake.storage_options or None)
    except DeltaTableNotFoundError as exc:
        raise TableNotFoundError(f"Delta table {spec.name!r} not found at {lake.uri(spec)}; run the pipeline first") from exc


def table_contract(lake: Lakehouse | str, spec: S.TableSpec) -> dict:
    """What the Delta log itself says about a table: description, partitioning, columns with comments."""
    dt = delta_table(lake, spec)
    meta = dt.metadata()
    return {
        "description": meta.description, "partition_by": list(meta.partition_columns),
        "columns": [(f.name, str(f.type), f.metadata.get("comment")) for f in dt.schema().fields],
    }


def newest_partition(lake: Lakehouse | str, spec: S.TableSpec) -> str | None:
    """The newest ds with live files (from the log only), or None without table or partitions."""
    try:
        found = delta_table(lake, spec).partitions()
    except TableNotFoundError:
        return None
    return max((p[S.DS] for p in found), default=None)


def published_days(lake: Lakehouse | str) -> list[date]:
    """Run dates with a published recommendations partition, oldest first (from the log only)."""
    try:
        found = delta_table(lake, S.RECOMMENDATIONS).partitions()
    except TableNotFoundError:
        return []
    return sorted(date.fromisoformat(p[S.DS]) for p in found)


def latest_published_ds(lake: Lakehouse | str) -> date:
    newest = newest_partition(lake, S.RECOMMENDATIONS)
    if newest is None:
        raise TableNotFoundError(f"no published night in {_lake(lake).uri(S.RECOMMENDATIONS)}")
    return date.fromisoformat(newest)


def dataset(lake: Lakehouse | str, spec: S.TableSpec, version: int | None = None) -> pads.Dataset:
    """The table's live files as a pyarrow dataset (filters push down to partitions and row groups)."""
    return delta_table(lake, spec, version).to_pyarrow_dataset()


def read_pandas(lake: Lakehouse | str, spec: S.TableSpec, *, ds: date | None = None, version: int | None = None,
                **filters) -> pd.DataFrame:
    """One table (optionally one ds, a version, and equality filters on other columns) as pandas."""
    expression = None
    for column, value in {**({S.DS: ds} if ds is not None else {}), **filters}.items():
        term = pads.field(column) == value
        expression = term if expression is None else expression & term
    return dataset(lake, spec, version).to_table(filter=expression).to_pandas()


def duckdb_connection(lake: Lakehouse | str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the same names as the Spark catalog: every table, plus
    `recommendations_latest` and `items_latest` (the newest ds)."""
    import duckdb

    con = duckdb.connect()
    for name, spec in S.TABLES.items():
        try:
            source = dataset(lake, spec)
        except TableNotFoundError:
            source = _arrow_schema(spec).empty_table()  # not written yet: an empty table with the contract
        con.register(name, source)
    for view, (table, _) in LATEST_VIEWS.items():
        newest = newest_partition(lake, S.TABLES[table])
        where = f"ds = DATE '{newest}'" if newest else "false"
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM {table} WHERE {where}")
    return con


def _arrow_schema(spec: S.TableSpec) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(spec.schema, timezone="UTC")


def user_list(lake: Lakehouse | str, user_id: str, ds: date | None = None) -> pd.DataFrame:
    """One user's list for ds (default: the newest published) with titles and the reason's title."""
    ds = ds or latest_published_ds(lake)
    recs = read_pandas(lake, S.RECOMMENDATIONS, ds=ds, user_id=user_id)
    if recs.empty:
        raise TableNotFoundError(f"no recommendations for user {user_id!r} on ds {ds}")
    items = read_pandas(lake, S.ITEMS, ds=ds)[[S.ITEM_ID, S.TITLE]]
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
        S.EXPLANATION: recs[S.EXPLANATION].to_numpy(),  # null on nights published before explanations
    })


def format_user_list(user_id: str, ds: date, rows: pd.DataFrame) -> str:
    lines = [f"user {user_id}, ds {ds}: {len(rows)} recommendations", ""]
    for r in rows.itertuples(index=False):
        parts = [f"{r.score:+.3f}"]
        if pd.notna(r.als_score):
            parts.append(f"als {r.als_score:.3f}")
        if pd.notna(r.content_score):
            parts.append(f"content {r.content_score:.3f}")
        why = r.explanation or (f"because you liked {r.because_you_liked}" if r.because_you_liked else None)
        reason = f"  {why}" if why else ""
        lines.append(f"{r.rank:>3}. {r.title or '?'} [{r.item_id}]  ({', '.join(parts)}; {r.strategy}){reason}")
    return "\n".join(lines)
