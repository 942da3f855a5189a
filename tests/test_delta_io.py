"""The Delta I/O layer: atomic partition replace, versions, time travel, schema checks."""

from __future__ import annotations

from datetime import date

import pytest
from deltalake import DeltaTable

from hybridrec import schema as S
from hybridrec.errors import SchemaMismatchError, TableNotFoundError
from hybridrec.io.delta import read_table, table_path, write_table


def _factors(spark, ds: str, users: list[str]):
    return spark.createDataFrame([(u, [1.0, 2.0], date.fromisoformat(ds)) for u in users], S.USER_FACTORS.schema)


def test_replace_partition_is_idempotent_and_versioned(spark, tmp_path):
    root = str(tmp_path)
    write_table(_factors(spark, "2026-11-21", ["a", "b"]), root, S.USER_FACTORS, run_id="r1", partition_value="2026-11-21")
    write_table(_factors(spark, "2026-11-22", ["a", "b", "c"]), root, S.USER_FACTORS, run_id="r2", partition_value="2026-11-22")
    again = write_table(_factors(spark, "2026-11-22", ["a", "b", "c"]), root, S.USER_FACTORS, run_id="r3",
                        partition_value="2026-11-22")
    assert again.version == 2
    dt = DeltaTable(table_path(root, S.USER_FACTORS))
    assert dt.metadata().partition_columns == ["ds"]
    per_ds = {str(r.ds): r.n for r in read_table(spark, root, S.USER_FACTORS).groupBy("ds").count()
              .withColumnRenamed("count", "n").collect()}
    assert per_ds == {"2026-11-21": 2, "2026-11-22": 3}
    assert dt.to_pyarrow_table().num_rows == 5
    assert dt.history(1)[0]["hybridrec.run_id"] == "r3"
    assert read_table(spark, root, S.USER_FACTORS, version=0).count() == 2


def test_read_one_partition_and_missing_partition(spark, tmp_path):
    root = str(tmp_path)
    write_table(_factors(spark, "2026-11-21", ["a"]), root, S.USER_FACTORS, run_id="r", partition_value="2026-11-21")
    assert read_table(spark, root, S.USER_FACTORS, partition_value="2026-11-21").first()["ds"] == date(2026, 11, 21)
    with pytest.raises(TableNotFoundError, match="ds=2026-11-30"):
        read_table(spark, root, S.USER_FACTORS, partition_value="2026-11-30")
    with pytest.raises(TableNotFoundError, match="item_factors"):
        read_table(spark, root, S.ITEM_FACTORS)


def test_schema_mismatch_is_refused(spark, tmp_path):
    df = _factors(spark, "2026-11-21", ["a"]).withColumnRenamed("features", "vector")
    with pytest.raises(SchemaMismatchError, match="vector"):
        write_table(df, str(tmp_path), S.USER_FACTORS, run_id="r", partition_value="2026-11-21")


def test_rows_outside_the_partition_are_refused_and_nothing_committed(spark, tmp_path):
    root = str(tmp_path)
    write_table(_factors(spark, "2026-11-21", ["a"]), root, S.USER_FACTORS, run_id="r", partition_value="2026-11-21")
    with pytest.raises(SchemaMismatchError, match="outside partition"):
        write_table(_factors(spark, "2026-11-20", ["z"]), root, S.USER_FACTORS, run_id="r", partition_value="2026-11-21")
    assert DeltaTable(table_path(root, S.USER_FACTORS)).version() == 0
    assert [r.user_id for r in read_table(spark, root, S.USER_FACTORS).collect()] == ["a"]
