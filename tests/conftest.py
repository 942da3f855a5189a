"""One session-scoped local[2] SparkSession for every test, built the way the jobs build it."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("SPARK_TESTING", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEST_SETTINGS = [
    "spark.master=local[2]",
    "spark.shuffle_partitions=2",
    'spark.driver_memory="2g"',
    'spark.conf={"spark.ui.enabled"="false", "spark.ui.showConsoleProgress"="false"}',
    "recommend.top_n=5",
    "recommend.new_item_slots=1",
    "gate.enabled=false",  # tests that exercise the gate turn it on
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
                *REAL_MODEL]
    for ds in PUBLISHED_NIGHTS:
        ctx = RunContext(spark=spark, cfg=make_config(root, *settings), ds=date.fromisoformat(ds))
        run_steps(ctx, STEPS)
        evaluation.write_metrics(ctx, evaluation.run_evaluation(ctx))
    return root, settings
