"""The Delta I/O layer on delta-spark: replaceWhere per ds, MERGE for embeddings, run ids in the
commits, time travel, schema checks, conflicts translated, and the JVM packages it runs on."""

from __future__ import annotations

import json
import threading
import time
from datetime import date
from pathlib import Path

import pyspark
import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.config import load_config
from hybridrec.errors import ConcurrentRunError, SchemaMismatchError, TableNotFoundError
from hybridrec.io.delta import read_table, write_table
from hybridrec.io.storage import table_path
from hybridrec.session import jar_paths

DS1, DS2 = date(2026, 11, 21), date(2026, 11, 22)


def _factors(spark, ds: date, users: list[str], value: float = 1.0):
    return spark.createDataFrame([(u, [value, 2.0], ds) for u in users], S.USER_FACTORS.schema)


def _history(spark, root, spec):
    return DeltaTable.forPath(spark, table_path(root, spec.name)).history().orderBy("version").collect()


def test_replace_partition_is_idempotent_versioned_and_tagged(spark, tmp_path):
    root = str(tmp_path)
    write_table(_factors(spark, DS1, ["a", "b"]), root, S.USER_FACTORS, run_id="r1", ds=DS1)
    write_table(_factors(spark, DS2, ["a", "b", "c"]), root, S.USER_FACTORS, run_id="r2", ds=DS2)
    again = write_table(_factors(spark, DS2, ["a", "b", "c"], 3.0), root, S.USER_FACTORS, run_id="r3", ds=DS2)
    assert (again.rows, again.version) == (3, 3)  # version 0 is the CREATE TABLE with the contract
    per_ds = {r[S.DS]: r["count"] for r in read_table(spark, root, S.USER_FACTORS).groupBy(S.DS).count().collect()}
    assert per_ds == {DS1: 2, DS2: 3}
    history = _history(spark, root, S.USER_FACTORS)
    assert [h["operation"] for h in history] == ["CREATE TABLE", "WRITE", "WRITE", "WRITE"]
    assert [json.loads(h["userMetadata"])["run_id"] for h in history[1:]] == ["r1", "r2", "r3"]
    assert history[3]["operationParameters"]["predicate"] == "ds = DATE'2026-11-22'"  # replaceWhere
    assert read_table(spark, root, S.USER_FACTORS, version=2, ds=DS2).first()["features"][0] == 1.0


def test_read_one_partition_and_missing_partition(spark, tmp_path):
    root = str(tmp_path)
    write_table(_factors(spark, DS1, ["a"]), root, S.USER_FACTORS, run_id="r", ds=DS1)
    assert read_table(spark, root, S.USER_FACTORS, ds=DS1).first()[S.DS] == DS1
    with pytest.raises(TableNotFoundError, match="ds=2026-11-30"):
        read_table(spark, root, S.USER_FACTORS, ds="2026-11-30")
    with pytest.raises(TableNotFoundError, match="item_factors"):
        read_table(spark, root, S.ITEM_FACTORS)


def test_schema_mismatch_is_refused(spark, tmp_path):
    df = _factors(spark, DS1, ["a"]).withColumnRenamed("features", "vector")
    with pytest.raises(SchemaMismatchError, match="vector"):
        write_table(df, str(tmp_path), S.USER_FACTORS, run_id="r", ds=DS1)


def test_rows_outside_the_partition_are_refused_and_nothing_committed(spark, tmp_path):
    root = str(tmp_path)
    write_table(_factors(spark, DS1, ["a"]), root, S.USER_FACTORS, run_id="r", ds=DS1)
    with pytest.raises(SchemaMismatchError, match="outside partition"):
        write_table(_factors(spark, date(2026, 11, 20), ["z"]), root, S.USER_FACTORS, run_id="r", ds=DS1)
    assert len(_history(spark, root, S.USER_FACTORS)) == 2
    assert [r.user_id for r in read_table(spark, root, S.USER_FACTORS).collect()] == ["a"]


def test_embeddings_grow_by_merge_on_their_key(spark, tmp_path):
    root = str(tmp_path)

    def rows(*keys):
        return spark.createDataFrame([(i, h, "m", [float(len(i))], DS1) for i, h in keys], S.ITEM_EMBEDDINGS.schema)

    write_table(rows(("a", "h1"), ("b", "h1")), root, S.ITEM_EMBEDDINGS, run_id="r1")
    second = write_table(rows(("a", "h1"), ("a", "h2"), ("c", "h1")), root, S.ITEM_EMBEDDINGS, run_id="r2")
    assert second.rows == 2  # (a, h1) was there already
    keys = sorted((r.item_id, r.text_hash) for r in read_table(spark, root, S.ITEM_EMBEDDINGS).collect())
    assert keys == [("a", "h1"), ("a", "h2"), ("b", "h1"), ("c", "h1")]
    assert _history(spark, root, S.ITEM_EMBEDDINGS)[-1]["operation"] == "MERGE"


def test_a_conflicting_commit_is_refused_with_the_table_and_ds(spark, tmp_path):
    """Run A writes ds2 while run B replaces the same partition: Delta refuses A's commit; the
    error names the table and the ds, and the partition holds B's rows only (never both)."""
    root = str(tmp_path)
    write_table(_factors(spark, DS2, ["seed"]), root, S.USER_FACTORS, run_id="r0", ds=DS2)
    gate = tmp_path / "b-committed"

    def wait_for_b(batches):
        import os
        import time as t
        while not os.path.exists(gate):  # hold A's write job open until B has committed
            t.sleep(0.05)
        yield from batches

    # One partition: A's job holds one of local[2]'s two task slots, leaving the other to B.
    slow = _factors(spark, DS2, ["a1", "a2"]).coalesce(1).mapInArrow(wait_for_b, S.USER_FACTORS.schema)
    outcome: dict = {}

    def run_a() -> None:
        try:
            write_table(slow, root, S.USER_FACTORS, run_id="run-a", ds=DS2)
            outcome["a"] = "committed"
        except Exception as exc:
            outcome["a"] = exc

    thread = threading.Thread(target=run_a)
    thread.start()
    time.sleep(3)  # A's job is running and waiting
    write_table(_factors(spark, DS2, ["b1"]), root, S.USER_FACTORS, run_id="run-b", ds=DS2)
    Path(gate).touch()
    thread.join(timeout=300)
    assert isinstance(outcome["a"], ConcurrentRunError), outcome
    assert "'user_factors'" in str(outcome["a"]) and "ds 2026-11-22" in str(outcome["a"])
    assert [r.user_id for r in read_table(spark, root, S.USER_FACTORS, ds=DS2).collect()] == ["b1"]


def test_jvm_packages_never_duplicate_what_pyspark_ships():
    """pom.xml excludes every jar pyspark already has: one copy of each class on the classpath."""
    def artifact(name: str) -> str:
        return name.rsplit("-", 1)[0] if name[0].isalpha() else name

    ours = {artifact(Path(p).stem) for p in jar_paths(load_config())}
    theirs = {artifact(p.stem) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    assert "delta-spark_4.2_2.13" in ours and "hadoop-aws" in ours and "hybridrec-jvm" in ours
    assert ours & theirs == set()


def test_spark_sees_the_tables_it_wrote_in_the_catalog(spark, tmp_path):
    root = str(tmp_path)
    write_table(_factors(spark, DS1, ["a"]), root, S.USER_FACTORS, run_id="r1", ds=DS1, database="hybridrec")
    write_table(_factors(spark, DS2, ["a", "b"]), root, S.USER_FACTORS, run_id="r2", ds=DS2, database="hybridrec")
    assert spark.sql("SELECT count(*) FROM hybridrec.user_factors").first()[0] == 3
    assert spark.sql("SELECT count(*) FROM hybridrec.user_factors VERSION AS OF 1").first()[0] == 1
    described = {r[0]: r[2] for r in spark.sql("DESCRIBE TABLE EXTENDED hybridrec.user_factors").collect()}
    assert described["features"] == "ALS latent factors."
    history = spark.sql("DESCRIBE HISTORY hybridrec.user_factors").where(F.col("userMetadata").isNotNull())
    assert sorted(json.loads(r[0])["run_id"] for r in history.select("userMetadata").collect()) == ["r1", "r2"]
