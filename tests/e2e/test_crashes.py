"""Crashes and re-runs, on local disk and on the S3 server: a run SIGKILLed while Spark writes a table
or just before Delta commits it leaves every table as it was (readers see no partial night), the next
run of the same ds lands exactly one copy, and `hybridrec vacuum` removes what the killed write left."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from conftest import TEST_SETTINGS
from hybridrec import schema as S
from hybridrec.config import load_config
from hybridrec.errors import TableNotFoundError
from hybridrec.io.delta import read_table
from hybridrec.io.maintenance import vacuum_table
from hybridrec.io.storage import table_path
from hybridrec.steps import STEPS, RunContext, run_steps
from topic_data import files_settings, write_topic_dataset

NIGHT_1, NIGHT_2 = date(2026, 11, 21), date(2026, 11, 22)
TESTS = Path(__file__).parents[1]
HARNESS = TESTS / "crash_harness.py"

# (store, step, ds, table, phase). Night 2 has every step but recommend, so a recommend crash on night 2
# is a first publish and one on night 1 is a re-run of a published night; the others re-run a night.
# CI runs one point per kind of commit (replaceWhere killed in its write job, MERGE, a first publish on
# S3) and one job kill; HYBRIDREC_CRASH_POINTS=all runs the whole matrix (each point is a cold Spark
# process: ~1 min on 2 cores), which adds the same first publish on local disk and re-runs of a
# published night.
CRASH_POINTS = [
    ("local", "ingest", NIGHT_2, "items", "during_write"),
    ("local", "embed_items", NIGHT_2, "item_embeddings", "before_commit"),
    ("s3", "recommend", NIGHT_2, "recommendations", "before_commit"),
]
MORE_CRASH_POINTS = [
    ("local", "recommend", NIGHT_2, "recommendations", "before_commit"),
    ("s3", "recommend", NIGHT_1, "recommendations", "before_commit"),
    ("local", "ingest", NIGHT_2, "interactions", "before_commit"),
    ("local", "train_als", NIGHT_2, "item_factors", "during_write"),
    ("local", "gate", NIGHT_2, "metrics", "before_commit"),
    ("local", "recommend", NIGHT_2, "recommendations", "during_write"),
    ("local", "recommend", NIGHT_1, "recommendations", "before_commit"),
    ("local", "summary", NIGHT_1, "runs", "before_commit"),
    ("s3", "embed_items", NIGHT_2, "item_embeddings", "before_commit"),
    ("s3", "recommend", NIGHT_2, "recommendations", "during_write"),
]
if os.environ.get("HYBRIDREC_CRASH_POINTS") == "all":
    CRASH_POINTS += MORE_CRASH_POINTS


@pytest.fixture(scope="session")
def kill_jar(tmp_path_factory) -> str:
    """tests/jvm compiled against the Delta and Hadoop jars the session uses."""
    import pyspark

    from hybridrec.config import load_config
    from hybridrec.session import jar_paths

    jars = [*jar_paths(load_config()), *map(str, (Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar"))]
    out = tmp_path_factory.mktemp("kill-jar")
    subprocess.run(["javac", "-d", str(out / "classes"), "-cp", ":".join(jars), *map(str, (TESTS / "jvm").glob("*.java"))],
                   check=True, capture_output=True)
    subprocess.run(["jar", "cf", str(out / "kill.jar"), "-C", str(out / "classes"), "."], check=True)
    return str(out / "kill.jar")


def _inputs(base: Path) -> list[str]:
    return files_settings({"interactions": base / "input" / "interactions.csv",
                           "items": base / "input" / "items.csv", "users": base / "input" / "users.csv"})


def _publish(spark, settings: list[str]) -> None:
    """Night 1 fully published; night 2 through the gate, not yet recommended."""
    cfg = load_config(overrides=[*TEST_SETTINGS, *settings])
    run_steps(RunContext(spark=spark, cfg=cfg, ds=NIGHT_1), STEPS)
    run_steps(RunContext(spark=spark, cfg=cfg, ds=NIGHT_2), tuple(s for s in STEPS if s != "recommend"))


@pytest.fixture(scope="module")
def published(spark, tmp_path_factory, s3_server) -> dict:
    """Published once on local disk; the S3 points start from an upload of the same folder (Delta
    tables hold relative paths, so a copied table is the same table)."""
    base = tmp_path_factory.mktemp("crash-base")
    write_topic_dataset(base / "input")
    _publish(spark, [f'lakehouse.root="{base / "lakehouse"}"', *_inputs(base)])
    bucket, client = s3_server.new_bucket(), s3_server.client()
    for file in (base / "lakehouse").rglob("*"):
        if file.is_file():
            client.upload_file(str(file), bucket, f"base/{file.relative_to(base / 'lakehouse')}")
    return {"base": base, "bucket": bucket}


def _copy_lakehouse(store: str, published: dict, s3_server, tmp_path: Path) -> list[str]:
    """A private copy of the published lakehouse; returns the settings that point at it."""
    if store == "local":
        shutil.copytree(published["base"] / "lakehouse", tmp_path / "lakehouse")
        return [f'lakehouse.root="{tmp_path / "lakehouse"}"', *_inputs(published["base"])]
    client, bucket, prefix = s3_server.client(), published["bucket"], tmp_path.name
    for key in s3_server.keys(bucket, "base/"):
        client.copy_object(Bucket=bucket, Key=f"{prefix}/{key.removeprefix('base/')}",
                           CopySource={"Bucket": bucket, "Key": key})
    return [*s3_server.settings(f"s3a://{bucket}/{prefix}"), *_inputs(published["base"])]


def _live(spark, root: str, name: str) -> tuple[int, list[str]]:
    """The table's version and the data files that version references."""
    table = DeltaTable.forPath(spark, table_path(root, name))
    return table.history(1).first()["version"], sorted(table.toDF().inputFiles())


def _data_files(spark, root: str, table: str) -> set[str]:
    """Every Parquet data file under the table folder, committed or not."""
    path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(table_path(root, table))
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    found, files = set(), fs.listFiles(path, True)
    while files.hasNext():
        name = files.next().getPath().toString()
        if name.endswith(".parquet") and "/_delta_log/" not in name:
            found.add(name)
    return found


def _unreferenced(spark, root: str, table: str, live: tuple[int, list[str]]) -> set[str]:
    def norm(p: str) -> str:
        return p.replace("file:///", "/").replace("file:/", "/")
    referenced = {norm(f) for f in live[1]}
    return {f for f in _data_files(spark, root, table) if norm(f) not in referenced}


@pytest.mark.parametrize(("store", "step", "ds", "table", "phase"), CRASH_POINTS,
                         ids=[f"{s}-{st}-{t}-{p}-{d:%d}" for s, st, d, t, p in CRASH_POINTS])
def test_sigkill_during_a_write_loses_nothing(spark, published, s3_server, kill_jar, cold_drivers, tmp_path, store, step,
                                              ds, table, phase):
    settings = [*TEST_SETTINGS, *_copy_lakehouse(store, published, s3_server, tmp_path),
                "lakehouse.vacuum_min_retention_hours=0", *(["gate.enabled=true"] if step == "gate" else [])]
    cfg = load_config(overrides=settings)
    root = cfg.lakehouse.root
    if step == "embed_items":  # give the embedding step work: one item's text changes
        items = tmp_path / "items.csv"
        items.write_text((published["base"] / "input" / "items.csv").read_text()
                         .replace("Starship Horizon", "Starship Horizon Returns"))
        settings.append(f'files.items="{items}"')
        cfg = load_config(overrides=settings)
        run_steps(RunContext(spark=spark, cfg=cfg, ds=ds), ("ingest",))
    before = _live(spark, root, table)
    rows_before = read_table(spark, root, S.TABLES[table], required=False).count()

    marker = tmp_path / "killed"
    proc = subprocess.run([sys.executable, str(HARNESS), step, ds.isoformat(), table, phase, kill_jar, *settings,
                           *cold_drivers.settings],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, start_new_session=True,
                          env=cold_drivers.environ(HYBRIDREC_KILL_MARKER=str(marker)))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    killed = marker.read_text()  # where the kill hit, written by the killer
    if phase == "during_write":
        assert killed == f"SIGKILL during the write job of {table}"
    else:
        assert killed.startswith("KillBeforeCommitLogStore: SIGKILL before") and f"/{table}/_delta_log/" in killed

    # The table being written is exactly as before (same version, same live files); readers see the
    # same rows.
    after = _live(spark, root, table)
    assert after == before
    assert read_table(spark, root, S.TABLES[table], required=False).count() == rows_before
    leftovers = _unreferenced(spark, root, table, after)
    if phase == "before_commit":
        assert leftovers, "the kill hit before the data files were written"  # it hit where it was aimed
    if (table, ds) == ("recommendations", NIGHT_2):
        with pytest.raises(TableNotFoundError):  # a first publish that died is not visible at all
            read_table(spark, root, S.RECOMMENDATIONS, ds=ds)

    # vacuum: the dry run lists the leftovers, executed it removes them; no live file is touched.
    dry = vacuum_table(spark, root, table, retention_hours=0, dry_run=True)
    assert {f.rsplit("/", 1)[-1] for f in leftovers} <= {f.rsplit("/", 1)[-1] for f in dry.files}
    vacuum_table(spark, root, table, retention_hours=0, dry_run=False)
    assert _unreferenced(spark, root, table, after) == set()
    assert _live(spark, root, table)[1] == after[1]  # same files (VACUUM itself adds two log entries)

    # The next run of the same ds succeeds and leaves exactly one copy of the night.
    run_steps(RunContext(spark=spark, cfg=cfg, ds=ds, force=step == "gate"), (step,))
    if table == "recommendations":
        night = read_table(spark, root, S.RECOMMENDATIONS, ds=ds)
        users = read_table(spark, root, S.USERS, ds=ds).count()
        assert night.count() == night.select(S.USER_ID, S.RANK).distinct().count() == users * cfg.recommend.top_n
        assert night.select(S.RUN_ID).distinct().count() == 1
    elif S.TABLES[table].write_mode == "replace_partition":
        again = read_table(spark, root, S.TABLES[table], ds=ds)
        assert again.count() == again.distinct().count() > 0
        assert read_table(spark, root, S.TABLES[table]).count() == rows_before
    runs = read_table(spark, root, S.RUNS).where((F.col("ds") == ds) & (F.col("step") == step))
    assert runs.where(F.col("status") == "succeeded").count() >= 1
