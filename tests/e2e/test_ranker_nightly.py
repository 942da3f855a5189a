"""The learned ranker in the nightly (the e2e lane: several steps on a small synthetic dataset): the
gate trains it and measures it, recommend publishes with exactly that model, and with too little data
the linear blend runs and every table says so."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from pyspark.sql import functions as F

from conftest import make_config
from hybridrec import schema as S
from hybridrec.io.delta import read_table
from hybridrec.scoring.candidates import FEATURES
from hybridrec.steps import RunContext, run_steps
from hybridrec.steps.evaluation import make_holdout, validation_holdout
from hybridrec.steps.finetune import validation_metrics
from hybridrec.transforms.als import fit_factors

NIGHT_1, NIGHT_2 = date(2026, 11, 21), date(2026, 11, 22)
SYNTHETIC = ['dataset.kind="synthetic"', "synthetic.n_users=300", "synthetic.n_items=120",
             "synthetic.n_interactions=6000", "synthetic.n_users_without_history=5", "ranker.enabled=true",
             "ranker.models=2", "ranker.trees=40", "ranker.candidates_per_source=20", "recommend.top_n=10",
             "recommend.new_item_slots=3", "evaluate.cold_k=10"]


@pytest.fixture(scope="module")
def ranked_night(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("ranker") / "lakehouse"
    ctx = RunContext(spark=spark, cfg=make_config(root, *SYNTHETIC, "gate.enabled=true", "gate.ease_margin_pct=100"),
                     ds=NIGHT_1)
    run_steps(ctx, ("ingest", "embed_items", "train_als", "gate", "recommend"))
    return ctx


def _step_rows(spark, ctx):
    return {r["step"]: r for r in read_table(spark, ctx.root, S.RUNS)
            .where((F.col(S.RUN_ID) == ctx.run_id) & (F.col("status") == "succeeded")).collect()}


def test_the_gate_trains_and_measures_the_ranker_and_recommend_publishes_with_it(spark, ranked_night):
    ctx = ranked_night
    ranker = read_table(spark, ctx.root, S.RANKERS, ds=NIGHT_1).collect()
    assert len(ranker) == 1 and ranker[0]["status"] == "trained" and ranker[0][S.RUN_ID] == ctx.run_id
    assert set(ranker[0]["importances"]) == set(FEATURES)
    assert ranker[0]["metrics"]["users_with_relevant"] >= 30
    assert ranker[0]["model_hash"] == hashlib.sha256(ranker[0][S.MODEL].encode()).hexdigest()[:10]
    # The gate compared the ranker (hybrid) with the linear blend and every reference.
    strategies = {r[S.STRATEGY] for r in read_table(spark, ctx.root, S.METRICS, ds=NIGHT_1)
                  .where(F.col(S.RUN_ID) == ctx.run_id).select(S.STRATEGY).distinct().collect()}
    assert strategies == {"popularity", "als", "content", "blend", "hybrid", "ease"}
    steps = _step_rows(spark, ctx)
    assert steps["gate"]["row_counts"]["ranker_trained"] == 1 and "(ranker)" in steps["gate"]["message"]
    assert steps["recommend"]["message"].startswith("published with the ranker")

    recs = read_table(spark, ctx.root, S.RECOMMENDATIONS, ds=NIGHT_1)
    versions = {r[S.MODEL_VERSION] for r in recs.select(S.MODEL_VERSION).distinct().collect()}
    assert len(versions) == 1 and versions.pop().endswith(f".ranker-{ranker[0]['model_hash']}")
    hybrid = recs.where(F.col(S.STRATEGY).isin("hybrid", "new_item"))
    per_user = hybrid.groupBy(S.USER_ID).agg(F.count(F.lit(1)).alias("n"), F.max(S.RANK).alias("last"),
                                              F.sum((F.col(S.STRATEGY) == "new_item").cast("int")).alias("new"))
    assert per_user.count() >= 290
    assert per_user.where((F.col("n") != F.col("last")) | (F.col("n") > 10) | (F.col("new") > 3)).count() == 0
    seen = read_table(spark, ctx.root, S.INTERACTIONS, ds=NIGHT_1).select(S.USER_ID, S.ITEM_ID)
    assert hybrid.join(seen, [S.USER_ID, S.ITEM_ID]).count() == 0
    # Every row explains itself; the ranker's rows name their strongest source (several sources win somewhere).
    kinds = {r[0] for r in recs.select(F.regexp_extract(S.EXPLANATION, r"^(because|liked by|popular|new)", 1))
             .distinct().collect()}
    assert "" not in kinds and len(kinds) >= 3


def test_an_encoder_version_is_judged_by_the_ranker_a_night_would_publish(spark, ranked_night):
    """finetune's verdict compares the hybrid that publishes: with the ranker enabled, a ranker trained
    on the judged encoder's features (on a validation split of the validation part), not the blend."""
    ctx = ranked_night
    outer = make_holdout(ctx.read(S.INTERACTIONS), ctx.cfg)
    valid = validation_holdout(outer, ctx.cfg)
    outer.release()
    factors = fit_factors(valid.train, ctx.cfg.als, ctx.ds)
    m = validation_metrics(ctx, ctx.cfg, valid, factors)
    valid.release()
    assert m["hybrid_ranked"] == 1.0
    # The ranker's lists, with the blend reported beside them (the same lists would differ in the last bits only).
    assert abs(m["hybrid_ndcg@10"] - m["blend_ndcg@10"]) > 1e-6
    assert all(0 <= m[f"{s}_{metric}"] <= 1 for s in ("content", "blend", "hybrid")
               for metric in ("ndcg@10", "cold_recall@10"))


def test_users_with_words_and_no_history_get_the_blend_not_the_ranker(spark, ranked_night):
    """The ranker never saw a user without history; such users who wrote something are scored by the
    linear blend, which fills its new-item places (the ranker's lists rarely hold a new item)."""
    ctx = ranked_night
    users, seen = (read_table(spark, ctx.root, spec, ds=NIGHT_1) for spec in (S.USERS, S.INTERACTIONS))
    words_only = {r[0] for r in users.where(F.col(S.TEXT).isNotNull()).join(seen, S.USER_ID, "left_anti")
                  .select(S.USER_ID).collect()}
    assert _step_rows(spark, ctx)["recommend"]["row_counts"]["words_only_users"] == len(words_only) >= 1
    recs = read_table(spark, ctx.root, S.RECOMMENDATIONS, ds=NIGHT_1).groupBy(S.USER_ID).agg(
        F.collect_set(S.STRATEGY).alias("strategies"), F.sum((F.col(S.STRATEGY) == "new_item").cast("int")).alias("new"))
    rows = {r[S.USER_ID]: r for r in recs.collect()}
    for user in words_only:
        assert set(rows[user]["strategies"]) == {"hybrid", "new_item"} and rows[user]["new"] == 3, rows[user]
    with_history = [r["new"] for u, r in rows.items() if u not in words_only and "popularity" not in r["strategies"]]
    assert sum(with_history) < len(with_history)  # the ranker's lists: far fewer new items


def test_with_too_little_data_the_linear_blend_runs_and_says_why(spark, ranked_night):
    cfg = make_config(ranked_night.root, *SYNTHETIC, "ranker.min_train_users=100000")  # gate off: recommend trains
    ctx = RunContext(spark=spark, cfg=cfg, ds=NIGHT_2)
    run_steps(ctx, ("ingest", "embed_items", "train_als", "recommend"))
    ranker = read_table(spark, ctx.root, S.RANKERS, ds=NIGHT_2).collect()
    assert len(ranker) == 1 and ranker[0]["status"] == "fallback" and ranker[0][S.MODEL] is None
    assert "ranker.min_train_users is 100000" in ranker[0]["message"]
    assert _step_rows(spark, ctx)["recommend"]["message"].startswith("published with the linear blend")
    recs = read_table(spark, ctx.root, S.RECOMMENDATIONS, ds=NIGHT_2)
    versions = {r[S.MODEL_VERSION] for r in recs.select(S.MODEL_VERSION).distinct().collect()}
    assert len(versions) == 1 and versions.pop().endswith(".blend")
    assert recs.where(F.col(S.STRATEGY) == "hybrid").count() > 0
