"""One session-scoped local[2] SparkSession for every test, built the way the jobs build it."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

os.environ.setdefault("SPARK_TESTING", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Adaptive query execution re-plans after every stage; on the tests' tiny data that costs more than it
# saves (the gate step 24.8 s -> 18.1 s, docs/benchmarks.md). Code generation compiles Java (Janino) for
# every new query plan, which on tiny data costs far more than interpreting the few rows: two nights
# with evaluation 463 s -> 301 s in one fresh session (docs/benchmarks.md). Spark's interpreted path gives
# the same results (its own test suites run both); the product keeps both on.
SPARK_CONF = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false", "spark.sql.adaptive.enabled": "false",
              "spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}
TEST_SETTINGS = [
    "spark.master=local[2]",
    "spark.shuffle_partitions=2",
    'spark.driver_memory="2g"',
    "spark.conf={" + ", ".join(f'"{k}"="{v}"' for k, v in SPARK_CONF.items()) + "}",
    "recommend.top_n=5",
    "recommend.new_item_slots=1",
    "gate.enabled=false",  # tests that exercise the gate turn it on
    "ranker.enabled=false",  # the linear blend: known answers; tests of the ranker turn it on
    "guardrails.enabled=false",  # a night-over-night check per recommend; tests of the guardrails turn it on
    "tracking.enabled=false",  # MLflow; tests/e2e/test_tracking.py turns it on against a real server
    "als.rank=4",
    "als.max_iter=5",
    # The hashing stand-in for the text model: tests where the model is not the point skip loading it
    # (tests/e2e runs the real all-MiniLM-L6-v2: test_embed, the Airflow DAGs, the cluster).
    'embedding.runtime="hashing"',
    'embedding.model="hashing-384"',
]
REAL_MODEL = ['embedding.runtime="onnxruntime"', 'embedding.model="all-MiniLM-L6-v2"']


def make_config(root, *extra: str):
    from hybridrec.config import load_config

    return load_config(overrides=[*TEST_SETTINGS, f'lakehouse.root="{root}"', *extra])


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server (moto's standalone server) on loopback for the whole session."""
    from object_store import S3Server

    with S3Server(tmp_path_factory.mktemp("s3-server")) as server:
        yield server


@pytest.fixture(scope="session")
def spark(tmp_path_factory, s3_server):
    """Built the way the jobs build it; its s3a settings point at the session's S3 server, so a
    test reaches a lakehouse there by setting only lakehouse.root."""
    from hybridrec.session import build_spark_session

    root = tmp_path_factory.mktemp("spark-root")
    session = build_spark_session(make_config(root, *s3_server.settings(str(root))[1:]))
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


PUBLISHED_NIGHTS = ("2026-11-21", "2026-11-22")


@pytest.fixture(scope="session")
def published_lakehouse(spark, tmp_path_factory):
    """Two published nights of the three-topic catalogue (tests/topic_data.py), each evaluated
    (`metrics` rows), embedded by the real model (its known answers are semantic: a cold item is
    explained by a history item of its topic); returns (root, settings). Shared by several modules:
    read it, or copy it first."""
    from datetime import date

    from hybridrec.steps import STEPS, RunContext, evaluation, run_steps
    from topic_data import files_settings, write_topic_dataset

    base = tmp_path_factory.mktemp("published")
    root = str(base / "lakehouse")
    settings = [f'lakehouse.root="{root}"', *files_settings(write_topic_dataset(base / "input")), "evaluate.cold_k=5",
                "guardrails.enabled=true", *REAL_MODEL]  # the notebooks chart data_quality
    for ds in PUBLISHED_NIGHTS:
        ctx = RunContext(spark=spark, cfg=make_config(root, *settings), ds=date.fromisoformat(ds))
        run_steps(ctx, STEPS)
        evaluation.write_metrics(ctx, evaluation.run_evaluation(ctx).metrics)
    return root, settings


@dataclass(frozen=True)
class ColdDrivers:
    """How the e2e tests start the Spark drivers they run as subprocesses (spark-submit, Airflow's
    tasks, the crash harness, the CLI): `java_options` for spark.driver/executor.extraJavaOptions,
    `settings` for `--set` (TEST_SETTINGS' spark.conf plus those options)."""

    java_options: str
    settings: list[str]

    @staticmethod
    def environ(**extra: str) -> dict[str, str]:
        """This process's environment for a subprocess driver, without SPARK_TESTING: with it, Spark's
        launcher puts test-class folders on the classpath, which the archive was not dumped with."""
        import sys

        env = {k: v for k, v in os.environ.items() if k != "SPARK_TESTING"}
        return {**env, "PYSPARK_PYTHON": sys.executable, **extra}


@pytest.fixture(scope="session")
def cold_drivers(tmp_path_factory) -> ColdDrivers:
    """A cold driver on tiny data spends most of its time loading and JIT-compiling Spark's classes
    (docs/benchmarks.md: the gate step 50.6 s -> 36.4 s, summary 26.1 s -> 15.8 s). So one warm-up
    ingest, run with spark-submit like the others, dumps a class-data-sharing archive of the classes it
    loaded (an archive from a whole night saved no more), and every later subprocess driver maps it and
    compiles with C1 only. Nothing a step computes changes; a JVM that cannot map the archive (another
    JDK or classpath) runs without it."""
    import subprocess
    import sys
    from pathlib import Path

    from topic_data import files_settings, write_topic_dataset

    base = tmp_path_factory.mktemp("cold-drivers")
    archive = base / "spark-classes.jsa"
    quiet = "-Xlog:cds=off -Xlog:cds+dynamic=off"  # the JVM would print CDS warnings on stdout
    bin_dir = Path(sys.executable).parent
    jars = subprocess.run([str(bin_dir / "hybridrec"), "jars"], capture_output=True, text=True, check=True).stdout.strip()
    cmd = [str(bin_dir / "spark-submit"), "--master", "local[2]", "--jars", jars,
           "--driver-java-options", f"-XX:ArchiveClassesAtExit={archive} {quiet}",
           str(Path(__file__).parents[1] / "jobs" / "ingest.py"), "--ds", "2026-11-21"]
    for setting in [*TEST_SETTINGS, f'lakehouse.root="{base / "lakehouse"}"',
                    *files_settings(write_topic_dataset(base / "input"))]:
        cmd += ["--set", setting]
    done = subprocess.run(cmd, cwd=base, env=ColdDrivers.environ(PYSPARK_DRIVER_PYTHON=sys.executable),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    options = f"-XX:TieredStopAtLevel=1 {quiet}" + (f" -XX:SharedArchiveFile={archive}" if archive.exists() else "")
    conf = SPARK_CONF | {"spark.driver.extraJavaOptions": options}
    return ColdDrivers(options, ["spark.conf={" + ", ".join(f'"{k}"="{v}"' for k, v in conf.items()) + "}"])
