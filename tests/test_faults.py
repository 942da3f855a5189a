"""Faults inside a run: a Python worker failing on one item, and runs that overlap."""

from __future__ import annotations

import threading
import time
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from conftest import make_config
from hybridrec import schema as S
from hybridrec.errors import EmbeddingError, RunInProgressError
from hybridrec.io.delta import read_table, table_version
from hybridrec.io.locks import LOCKS_DIR
from hybridrec.pipeline import STEPS, RunContext, run_steps
from topic_data import USERS_PER_TOPIC, files_settings, write_topic_dataset

NIGHT_1, NIGHT_2 = date(2026, 11, 21), date(2026, 11, 22)

# Imported by every Python worker started with this folder on PYTHONPATH: the model raises on one text.
FAULTY_WORKER = '''
import hybridrec.embed as embed
_real = embed.embed_texts
def embed_texts(texts, **kwargs):
    if any("Alien Signal" in t for t in texts):
        raise ValueError("tokenizer blew up")
    return _real(texts, **kwargs)
embed.embed_texts = embed_texts
'''


def test_worker_failure_names_step_and_item_and_publishes_nothing(spark, tmp_path):
    cfg = make_config(tmp_path / "lh", *files_settings(write_topic_dataset(tmp_path / "in")))
    run_steps(RunContext(spark=spark, cfg=cfg, ds=NIGHT_1), ("ingest",))
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FAULTY_WORKER)
    env = spark.sparkContext.environment
    env["PYTHONPATH"] = str(hook)  # a new worker environment: Spark starts fresh workers with the hook
    try:
        with pytest.raises(EmbeddingError) as caught:
            run_steps(RunContext(spark=spark, cfg=cfg, ds=NIGHT_1), STEPS[1:])
    finally:
        del env["PYTHONPATH"]
    message = str(caught.value)
    assert "embed_items" in message and "'space_2'" in message and "tokenizer blew up" in message, message
    assert table_version(cfg.lakehouse.root, S.ITEM_EMBEDDINGS) is None
    assert table_version(cfg.lakehouse.root, S.RECOMMENDATIONS) is None
    staging = Path(cfg.lakehouse.root) / S.ITEM_EMBEDDINGS.name / "_staging"
    assert not staging.exists() or not any(staging.iterdir())
    failed = read_table(spark, cfg.lakehouse.root, S.RUNS).where(F.col("status") == "failed").collect()
    assert [r["step"] for r in failed] == ["embed_items"] and "'space_2'" in failed[0]["message"]


def _run_in_thread(ctx: RunContext, outcome: dict) -> threading.Thread:
    def target() -> None:
        try:
            run_steps(ctx, STEPS)
            outcome[ctx.run_id] = "ok"
        except Exception as exc:
            outcome[ctx.run_id] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread


def test_overlapping_runs_both_land_or_one_is_refused(spark, tmp_path):
    """Two dates at once on an empty lakehouse both land (they race to create every table); a second
    run of a date already running is refused before it writes anything."""
    cfg = make_config(tmp_path / "lh", *files_settings(write_topic_dataset(tmp_path / "in")))
    outcome: dict = {}
    first, second, duplicate = (RunContext(spark=spark, cfg=cfg, ds=d) for d in (NIGHT_1, NIGHT_2, NIGHT_1))
    threads = [_run_in_thread(first, outcome), _run_in_thread(second, outcome)]
    lock = Path(cfg.lakehouse.root) / LOCKS_DIR / f"ds={NIGHT_1}.lock"
    deadline = time.monotonic() + 60
    while first.run_id not in (lock.read_text() if lock.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)
    threads.append(_run_in_thread(duplicate, outcome))
    for thread in threads:
        thread.join(timeout=900)

    assert outcome[first.run_id] == "ok" and outcome[second.run_id] == "ok", outcome
    refused = outcome[duplicate.run_id]
    assert isinstance(refused, RunInProgressError)
    assert str(NIGHT_1) in str(refused) and first.run_id in str(refused)
    recommendations = read_table(spark, cfg.lakehouse.root, S.RECOMMENDATIONS)
    users = 3 * USERS_PER_TOPIC + 1  # topic fans plus the roster user without history
    per_night = {(r[S.DS], r[S.RUN_ID]): r["count"] for r in recommendations.groupBy(S.DS, S.RUN_ID).count().collect()}
    assert per_night == {(NIGHT_1, first.run_id): users * cfg.recommend.top_n,
                         (NIGHT_2, second.run_id): users * cfg.recommend.top_n}
    runs = read_table(spark, cfg.lakehouse.root, S.RUNS)
    assert runs.where(F.col(S.RUN_ID) == duplicate.run_id).count() == 0  # refused before its first step
    assert runs.where(F.col("status") == "succeeded").count() == 2 * len(STEPS)
