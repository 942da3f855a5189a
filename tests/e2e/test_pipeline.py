"""The nightly run end to end, in process, on the topic dataset (known right answers)."""

from __future__ import annotations

import json
import shutil
from datetime import date

import pytest
from delta.tables import DeltaTable as SparkDeltaTable
from deltalake import DeltaTable
from pyspark.sql import functions as F

from conftest import PUBLISHED_NIGHTS, make_config
from hybridrec import schema as S
from hybridrec.io.delta import read_table
from hybridrec.io.storage import table_path
from hybridrec.steps import STEPS, RunContext, run_steps
from topic_data import TOPICS, USERS_PER_TOPIC

DS = "2026-11-22"
TOP_N = 5


@pytest.fixture(scope="module")
def nightly(spark, published_lakehouse, tmp_path_factory):
    """The night DS as published by one full run, in a private copy of the shared lakehouse (the
    tests here re-run steps); returns (config, recommendations as rows, the run id that wrote them)."""
    root, settings = published_lakehouse
    assert DS == PUBLISHED_NIGHTS[-1]
    copy = tmp_path_factory.mktemp("nightly") / "lakehouse"
    shutil.copytree(root, copy)
    cfg = make_config(copy, *(s for s in settings if not s.startswith("lakehouse.root")))
    recs = read_table(spark, cfg.lakehouse.root, S.RECOMMENDATIONS, ds=DS).collect()
    return cfg, recs, recs[0][S.RUN_ID]


def _interactions(spark, cfg):
    return read_table(spark, cfg.lakehouse.root, S.INTERACTIONS, ds=DS)


def test_topic_fan_gets_the_untouched_item_of_their_topic(nightly):
    _, recs, _ = nightly
    for topic in TOPICS:
        for u in range(USERS_PER_TOPIC):
            items = {r[S.ITEM_ID] for r in recs if r[S.USER_ID] == f"{topic}_fan_{u}"}
            assert f"cold_{topic}" in items, f"{topic}_fan_{u} got {sorted(items)}"


def test_cold_item_is_explained_by_a_history_item_of_the_same_topic(nightly):
    _, recs, _ = nightly
    cold = [r for r in recs if r[S.ITEM_ID] == "cold_space" and r[S.USER_ID].startswith("space_fan")]
    assert cold and all(r[S.REASON_ITEM_ID].startswith("space_") for r in cold)
    assert all(r[S.ALS_SCORE] is None and r[S.CONTENT_SCORE] > 0 for r in cold)
    assert {r[S.STRATEGY] for r in cold} == {"new_item"}  # it holds one of the places kept for new items


def test_seen_items_never_recommended(spark, nightly):
    cfg, recs, _ = nightly
    seen = {(r[S.USER_ID], r[S.ITEM_ID]) for r in _interactions(spark, cfg).collect()}
    assert seen, "the fixture must have interactions"
    assert not seen & {(r[S.USER_ID], r[S.ITEM_ID]) for r in recs}


def test_every_user_gets_exactly_n_ranked_rows(nightly):
    _, recs, _ = nightly
    by_user: dict[str, list[int]] = {}
    for r in recs:
        by_user.setdefault(r[S.USER_ID], []).append(r[S.RANK])
    assert len(by_user) == len(TOPICS) * USERS_PER_TOPIC + 1  # fans + the roster-only newcomer
    assert all(sorted(ranks) == list(range(1, TOP_N + 1)) for ranks in by_user.values())


def test_user_without_history_gets_popularity(nightly):
    _, recs, _ = nightly
    newcomer = sorted((r for r in recs if r[S.USER_ID] == "newcomer"), key=lambda r: r[S.RANK])
    assert {r[S.STRATEGY] for r in newcomer} == {"popularity"}
    assert [r[S.SCORE] for r in newcomer] == sorted((r[S.SCORE] for r in newcomer), reverse=True)
    assert not any(r[S.ITEM_ID].startswith("cold_") for r in newcomer)


def test_rows_carry_run_id_model_version_and_ds(nightly):
    _, recs, run_id = nightly
    assert {r[S.RUN_ID] for r in recs} == {run_id}
    assert {r[S.DS] for r in recs} == {date.fromisoformat(DS)}
    assert len({r[S.MODEL_VERSION] for r in recs}) == 1


def test_runs_table_records_each_step(spark, nightly):
    cfg, _, run_id = nightly
    runs = read_table(spark, cfg.lakehouse.root, S.RUNS).where(F.col(S.RUN_ID) == run_id).collect()
    assert sorted(r["step"] for r in runs if r["status"] == "running") == sorted(STEPS)  # each step's claim
    runs = [r for r in runs if r["status"] != "running"]
    assert sorted(r["step"] for r in runs) == sorted(STEPS)
    assert {r["status"] for r in runs} == {"succeeded"}
    ingest = next(r for r in runs if r["step"] == "ingest")
    assert ingest["row_counts"]["interactions_read"] == ingest["row_counts"]["interactions_kept"] == 36


def test_rerun_replaces_the_night_and_adds_a_version(spark, nightly):
    """delta-spark writes; delta-rs (the readers without Spark) sees the same versions and commits."""
    cfg, recs, _ = nightly
    path = table_path(cfg.lakehouse.root, S.RECOMMENDATIONS.name)
    before = SparkDeltaTable.forPath(spark, path).history(1).first()["version"]
    ctx = RunContext(spark=spark, cfg=cfg, ds=date.fromisoformat(DS))
    run_steps(ctx, ("recommend",))
    last = SparkDeltaTable.forPath(spark, path).history(1).first()
    assert last["version"] == before + 1 and last["operation"] == "WRITE"
    assert json.loads(last["userMetadata"])["run_id"] == ctx.run_id
    rust = DeltaTable(path)
    assert rust.version() == before + 1 and json.loads(rust.history(1)[0]["userMetadata"])["run_id"] == ctx.run_id
    night = rust.to_pyarrow_table(filters=[(S.DS, "=", date.fromisoformat(DS))])
    assert night.num_rows == len(recs)  # replaced in one commit, never appended
    # Time travel: the previous version still holds the first run's rows, in Spark and in delta-rs.
    previous = read_table(spark, cfg.lakehouse.root, S.RECOMMENDATIONS, version=before, ds=DS).collect()
    assert {r[S.RUN_ID] for r in previous} == {recs[0][S.RUN_ID]}
    rust_previous = DeltaTable(path, version=before).to_pyarrow_table(
        columns=[S.RUN_ID], filters=[(S.DS, "=", date.fromisoformat(DS))])
    assert set(rust_previous.column(0).to_pylist()) == {recs[0][S.RUN_ID]}


def test_second_embed_run_embeds_nothing(spark, nightly):
    cfg, _, _ = nightly
    ctx = RunContext(spark=spark, cfg=cfg, ds=date.fromisoformat(DS))
    run_steps(ctx, ("embed_items",))
    assert ctx.records[0].row_counts == {"items": 18, "embedded": 0}
