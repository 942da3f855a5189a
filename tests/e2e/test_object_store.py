"""The lakehouse on object storage: a real S3-compatible server on loopback (moto), `lakehouse.root =
s3a://bucket/prefix`, credentials and path-style access through configuration. The nightly, re-runs,
time travel, the catalog, vacuum and the readers without Spark pass the same checks as on local
disk; two drivers committing to one table at once are kept apart by S3 conditional writes. (Two
nights side by side, each re-run replacing only its own partition, are checked on local disk: the same
Delta code, only the file system differs.)"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from conftest import TEST_SETTINGS, make_config
from hybridrec import analytics
from hybridrec import schema as S
from hybridrec.io.delta import read_table
from hybridrec.io.encoders import local_folder, store_version
from hybridrec.io.maintenance import vacuum_table
from hybridrec.io.storage import table_path
from hybridrec.steps import STEPS, RunContext, run_steps
from object_store import ACCESS_KEY, SECRET_KEY
from topic_data import TOPICS, USERS_PER_TOPIC, files_settings, write_topic_dataset

NIGHT_1, NIGHT_2 = date(2026, 11, 21), date(2026, 11, 22)
NIGHT = NIGHT_2
TOP_N = 5
USERS = len(TOPICS) * USERS_PER_TOPIC + 1


@pytest.fixture(scope="module")
def s3_lakehouse(spark, s3_server, tmp_path_factory):
    """One night published to s3a://<bucket>/lake, then its recommend step re-run."""
    base = tmp_path_factory.mktemp("s3-lakehouse")
    bucket = s3_server.new_bucket()
    root = f"s3a://{bucket}/lake"
    cfg = make_config(root, *s3_server.settings(root)[1:], *files_settings(write_topic_dataset(base / "input")))
    night = RunContext(spark=spark, cfg=cfg, ds=NIGHT)
    run_steps(night, STEPS)
    first = read_table(spark, root, S.RECOMMENDATIONS, ds=NIGHT).collect()
    rerun = RunContext(spark=spark, cfg=cfg, ds=NIGHT)
    run_steps(rerun, ("recommend",))
    return {"cfg": cfg, "root": root, "bucket": bucket, "run_ids": [night.run_id, rerun.run_id], "first": first}


def test_the_nightly_publishes_full_unseen_lists_to_object_storage(spark, s3_server, s3_lakehouse):
    root, bucket = s3_lakehouse["root"], s3_lakehouse["bucket"]
    recs = read_table(spark, root, S.RECOMMENDATIONS, ds=NIGHT).collect()
    ranks: dict[str, list[int]] = {}
    for r in recs:
        ranks.setdefault(r[S.USER_ID], []).append(r[S.RANK])
    assert len(ranks) == USERS and all(sorted(v) == list(range(1, TOP_N + 1)) for v in ranks.values())
    seen = {(r[S.USER_ID], r[S.ITEM_ID]) for r in read_table(spark, root, S.INTERACTIONS, ds=NIGHT).collect()}
    assert seen and not seen & {(r[S.USER_ID], r[S.ITEM_ID]) for r in recs}
    keys = s3_server.keys(bucket, "lake/recommendations/")
    assert any(k.startswith("lake/recommendations/_delta_log/") for k in keys)
    assert any(k.startswith("lake/recommendations/ds=2026-11-22/") and k.endswith(".parquet") for k in keys)


def test_a_rerun_is_one_new_version_with_the_same_rows_and_the_old_one_stays_readable(spark, s3_lakehouse):
    root, (night, rerun) = s3_lakehouse["root"], s3_lakehouse["run_ids"]
    now = read_table(spark, root, S.RECOMMENDATIONS, ds=NIGHT).collect()

    def lists(rows):
        return sorted((r[S.USER_ID], r[S.RANK], r[S.ITEM_ID]) for r in rows)

    assert lists(now) == lists(s3_lakehouse["first"]) and {r[S.RUN_ID] for r in now} == {rerun}
    history = spark.sql("DESCRIBE HISTORY hybridrec.recommendations").orderBy("version").collect()
    tagged = [(h["version"], json.loads(h["userMetadata"])["run_id"]) for h in history if h["userMetadata"]]
    assert [run for _, run in tagged] == [night, rerun]  # two commits carrying run ids
    replaced = tagged[0][0]
    before = spark.sql(f"SELECT DISTINCT run_id FROM hybridrec.recommendations VERSION AS OF {replaced} "
                       "WHERE ds = DATE'2026-11-22'").collect()
    assert [r[0] for r in before] == [night]
    latest = spark.sql("SELECT count(*), min(ds) FROM hybridrec.recommendations_latest").first()
    assert tuple(latest) == (USERS * TOP_N, NIGHT)


def test_readers_without_spark_read_the_same_versions_from_object_storage(spark, s3_lakehouse):
    root, cfg = s3_lakehouse["root"], s3_lakehouse["cfg"]
    lake = analytics.Lakehouse.from_config(cfg)
    assert lake.storage_options["AWS_SECRET_ACCESS_KEY"] == SECRET_KEY  # from configuration, not the environment
    rust = analytics.delta_table(lake, S.RECOMMENDATIONS)
    spark_version = DeltaTable.forPath(spark, table_path(root, "recommendations")).history(1).first()["version"]
    assert rust.version() == spark_version
    con = analytics.duckdb_connection(lake)
    assert con.execute("SELECT count(*), min(ds) FROM recommendations_latest").fetchone() == (USERS * TOP_N, NIGHT)
    previous = analytics.read_pandas(lake, S.RECOMMENDATIONS, ds=NIGHT, version=spark_version - 1)
    assert set(previous[S.RUN_ID]) == {s3_lakehouse["run_ids"][0]}
    assert analytics.published_days(lake) == [NIGHT]


def test_vacuum_on_object_storage_deletes_only_what_no_kept_version_needs(spark, s3_server, s3_lakehouse):
    root, bucket = s3_lakehouse["root"], s3_lakehouse["bucket"]
    live = set(DeltaTable.forPath(spark, table_path(root, "recommendations")).toDF().inputFiles())
    # One table: listing and deleting on S3 is what differs from local disk (vacuum_lakehouse's walk over
    # every table is checked there, tests/spark/test_schema_security.py).
    replaced = vacuum_table(spark, root, "recommendations", retention_hours=0, dry_run=True).files
    assert replaced and all(f.startswith("ds=2026-11-22/") for f in replaced)  # the re-run's predecessor
    assert all(f"lake/recommendations/{f}" in s3_server.keys(bucket, "lake/recommendations/") for f in replaced)
    vacuum_table(spark, root, "recommendations", retention_hours=0, dry_run=False)
    keys = s3_server.keys(bucket, "lake/recommendations/")
    assert not any(f"lake/recommendations/{f}" in keys for f in replaced)
    assert live == set(DeltaTable.forPath(spark, table_path(root, "recommendations")).toDF().inputFiles())
    assert read_table(spark, root, S.RECOMMENDATIONS).count() == USERS * TOP_N


def test_the_log_store_refuses_a_second_writer_of_one_commit(spark, s3_server):
    """Two writers of the same Delta version: S3's conditional PUT lets one in; the other gets the
    FileAlreadyExistsException Delta retries on (lib/jvm/.../S3ConditionalPutLogStore.java)."""
    bucket = s3_server.new_bucket()
    jvm, conf = spark.sparkContext._jvm, spark.sparkContext._jsc.hadoopConfiguration()
    path = jvm.org.apache.hadoop.fs.Path(f"s3a://{bucket}/t/_delta_log/00000000000000000007.json")
    first, second = (jvm.hybridrec.delta.S3ConditionalPutLogStore(conf) for _ in range(2))
    first.write(path, jvm.java.util.List.of("first").iterator(), False, conf)
    with pytest.raises(Exception, match="FileAlreadyExistsException"):
        second.write(path, jvm.java.util.List.of("second").iterator(), False, conf)
    body = s3_server.client().get_object(Bucket=bucket, Key="t/_delta_log/00000000000000000007.json")["Body"].read()
    assert body == b"first\n"


def test_an_encoder_version_is_stored_on_object_storage_and_downloaded_once(spark, s3_server, tmp_path, monkeypatch):
    """A fine-tuned version's folder goes up with the lakehouse (s3a) and comes down once per machine
    into the cache, byte for byte, nested adapter folder included."""
    monkeypatch.setenv("HYBRIDREC_CACHE", str(tmp_path / "cache"))
    files = {"model.safetensors": bytes(range(256)) * 40, "config.json": b'{"hidden_size": 384}',
             "adapter/adapter_model.safetensors": b"low-rank"}
    version = tmp_path / "ft-20261122-abc"
    for name, data in files.items():
        (version / name).parent.mkdir(parents=True, exist_ok=True)
        (version / name).write_bytes(data)
    bucket = s3_server.new_bucket()
    target = f"s3a://{bucket}/lake/_models/encoder/ft-20261122-abc"
    store_version(spark, version, target)
    assert s3_server.keys(bucket, "lake/_models/") == sorted(f"lake/_models/encoder/ft-20261122-abc/{n}" for n in files)
    local = Path(local_folder(spark, target))
    assert local == tmp_path / "cache" / "encoders" / "ft-20261122-abc"
    assert {str(f.relative_to(local)): f.read_bytes() for f in local.rglob("*") if f.is_file()} == files
    client = s3_server.client()  # gone from the store: the cached copy still serves, nothing is fetched again
    for key in s3_server.keys(bucket, "lake/_models/"):
        client.delete_object(Bucket=bucket, Key=key)
    assert local_folder(spark, target) == str(local)


def _ingest_process(s3_server, root: str, ds: date, inputs: list[str], tmp_path, cold_drivers) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hybridrec.cli", "ingest", "--ds", ds.isoformat()]
    for setting in [*TEST_SETTINGS, *cold_drivers.settings, *s3_server.settings(root), *inputs]:
        cmd += ["--set", setting]
    return subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cold_drivers.environ())


def test_two_drivers_at_once_on_two_dates_both_land(spark, s3_server, cold_drivers, tmp_path):
    """Two spark applications (two drivers) ingest into one lakehouse on S3 at the same time: they race
    for the same Delta versions of every table, and S3's conditional PUT keeps every commit of both.
    (A second run of the same date taking the step over is product logic, not storage: tests/spark/test_faults.)"""
    inputs = files_settings(write_topic_dataset(tmp_path / "input"))
    root = f"s3a://{s3_server.new_bucket()}/lake"
    both = [_ingest_process(s3_server, root, ds, inputs, tmp_path, cold_drivers) for ds in (NIGHT_1, NIGHT_2)]
    outs = [p.communicate(timeout=900) for p in both]
    assert [p.returncode for p in both] == [0, 0], [o[1][-3000:] for o in outs]
    for ds in (NIGHT_1, NIGHT_2):
        items = read_table(spark, root, S.ITEMS, ds=ds)
        assert items.count() == items.select(S.ITEM_ID).distinct().count() == 18
        assert read_table(spark, root, S.INTERACTIONS, ds=ds).count() == 36
    runs = read_table(spark, root, S.RUNS).where(F.col("step") == "ingest")
    assert sorted(r["status"] for r in runs.collect()) == ["running", "running", "succeeded", "succeeded"]
    history = DeltaTable.forPath(spark, table_path(root, "items")).history().where(F.col("userMetadata").isNotNull())
    writers = {json.loads(r[0])["run_id"] for r in history.select("userMetadata").collect()}
    assert len(writers) == 2  # one commit per driver, neither lost
    assert ACCESS_KEY not in "".join(o[1] for o in outs) and SECRET_KEY not in "".join(o[1] for o in outs)
