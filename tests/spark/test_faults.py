"""Faults inside a run: a Python worker failing on one item, and runs that overlap."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest
from pyspark.sql import functions as F

from conftest import make_config
from hybridrec import schema as S
from hybridrec.errors import ConcurrentRunError, EmbeddingError
from hybridrec.io.delta import read_table, table_version
from hybridrec.steps import STEPS, RunContext, run_steps
from topic_data import USERS_PER_TOPIC, files_settings, write_topic_dataset

NIGHT_1, NIGHT_2 = date(2026, 11, 21), date(2026, 11, 22)

# Imported by every Python worker started with this folder on PYTHONPATH: the model raises on one text.
FAULTY_WORKER = '''
import hybridrec.embedding.encoder as embed
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
    embeddings = table_version(spark, cfg.lakehouse.root, S.ITEM_EMBEDDINGS)
    assert embeddings in (None, 0)  # at most the empty table the contract created: no rows committed
    assert read_table(spark, cfg.lakehouse.root, S.ITEM_EMBEDDINGS, required=False).count() == 0
    assert table_version(spark, cfg.lakehouse.root, S.RECOMMENDATIONS) is None
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


def test_overlapping_runs_of_two_dates_both_land_and_of_one_date_one_wins(spark, tmp_path):
    """Two dates at once on an empty lakehouse both land (they race to create every table). A second
    run of a date already running takes the date over (the newest run of a step wins): the first
    stops with ConcurrentRunError at its next write, naming the table and ds; the night holds the
    winner's rows only, never both and never doubled."""
    cfg = make_config(tmp_path / "lh", *files_settings(write_topic_dataset(tmp_path / "in")))
    outcome: dict = {}
    first, second, duplicate = (RunContext(spark=spark, cfg=cfg, ds=d) for d in (NIGHT_1, NIGHT_2, NIGHT_1))
    threads = [_run_in_thread(first, outcome), _run_in_thread(second, outcome)]
    deadline = time.monotonic() + 120
    while not first.records and time.monotonic() < deadline:  # the first run has claimed its first step
        time.sleep(0.05)
    threads.append(_run_in_thread(duplicate, outcome))
    for thread in threads:
        thread.join(timeout=1200)

    described = {run: str(result)[:2000] for run, result in outcome.items()}
    assert outcome[second.run_id] == "ok", described
    assert outcome[duplicate.run_id] == "ok", described  # the newer run of night 1 lands
    stopped = outcome[first.run_id]
    assert isinstance(stopped, ConcurrentRunError), outcome
    assert f"ds {NIGHT_1}" in str(stopped) and duplicate.run_id in str(stopped) and "table '" in str(stopped)
    recommendations = read_table(spark, cfg.lakehouse.root, S.RECOMMENDATIONS)
    users = 3 * USERS_PER_TOPIC + 1  # topic fans plus the roster user without history
    per_night = {(r[S.DS], r[S.RUN_ID]): r["count"] for r in recommendations.groupBy(S.DS, S.RUN_ID).count().collect()}
    assert per_night == {(NIGHT_1, duplicate.run_id): users * cfg.recommend.top_n,
                         (NIGHT_2, second.run_id): users * cfg.recommend.top_n}
    items = read_table(spark, cfg.lakehouse.root, S.ITEMS, ds=NIGHT_1)
    assert items.count() == items.select(S.ITEM_ID).distinct().count() == 18
    runs = read_table(spark, cfg.lakehouse.root, S.RUNS)
    assert runs.where((F.col(S.RUN_ID) == first.run_id) & (F.col("status") == "failed")).count() == 1
    assert runs.where(F.col("status") == "succeeded").count() == 2 * len(STEPS)
