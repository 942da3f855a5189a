"""The analysts' surface without Spark: pandas and DuckDB over the Delta tables through delta-rs,
and one user's list for `hybridrec show` (readers.py). In Spark, the tables are in the catalog."""

from hybridrec.analytics.readers import (
    Lakehouse,
    dataset,
    delta_table,
    duckdb_connection,
    format_user_list,
    latest_published_ds,
    newest_partition,
    published_days,
    read_pandas,
    table_contract,
    user_list,
)

__all__ = ["Lakehouse", "dataset", "delta_table", "duckdb_connection", "format_user_list", "latest_published_ds",
           "newest_partition", "published_days", "read_pandas", "table_contract", "user_list"]
