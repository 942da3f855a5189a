"""Holdout splits and metrics on tiny frames with hand-computed answers."""

from __future__ import annotations

import math
from datetime import datetime

import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.quality import metrics as ev
from hybridrec.quality import splits
from hybridrec.quality.gate import gate_failures
from hybridrec.quality.tuning import blend_grid

INTERACTION_COLUMNS = [S.USER_ID, S.ITEM_ID, S.EVENT_TS, S.WEIGHT]


def interactions(spark, rows):
    return spark.createDataFrame(
        [(u, i, datetime(2026, 11, d), float(w)) for u, i, d, w in rows], INTERACTION_COLUMNS)


@pytest.fixture
def split(spark):
    rows = [
        # u1: five events, the last one (day 5) is test.
        ("u1", "a", 1, 5), ("u1", "b", 2, 5), ("u1", "c", 3, 5), ("u1", "d", 4, 5), ("u1", "new", 5, 5),
        # u2: five events; its test event (day 9) is a low rating, so not relevant.
        ("u2", "a", 5, 5), ("u2", "b", 6, 5), ("u2", "c", 7, 5), ("u2", "d", 8, 5), ("u2", "e", 9, 1),
        # u3: one event stays in training.
        ("u3", "a", 1, 5),
    ]
    return splits.with_per_user_split(interactions(spark, rows), test_fraction=0.2)


def test_per_user_split_holds_out_each_users_latest_events(split):
    test = {(r[S.USER_ID], r[S.ITEM_ID]) for r in split.filter(splits.IS_TEST).collect()}
    assert test == {("u1", "new"), ("u2", "e")}


def test_time_split_uses_the_cutoff(spark):
    df = interactions(spark, [("u", "a", 1, 1), ("u", "b", 3, 1)])
    cutoff = datetime(2026, 11, 2).timestamp()
    flags = {r[S.ITEM_ID]: r[splits.IS_TEST] for r in splits.with_time_split(df, cutoff).collect()}
    assert flags == {"a": False, "b": True}


def test_relevant_items_are_positive_unseen_test_items_flagged_cold(spark, split):
    relevant = splits.relevant_items(split, positive_min_weight=4.0)
    expected = spark.createDataFrame([("u1", "new", True)], [S.USER_ID, S.ITEM_ID, splits.IS_COLD])
    assert_df_equality(relevant, expected, ignore_nullable=True)


def test_evaluation_users_have_relevant_items_and_a_light_flag(spark, split):
    users = splits.evaluation_users(split, splits.relevant_items(split, 4.0), light_max=4)
    expected = spark.createDataFrame([("u1", 4, True)], [S.USER_ID, splits.N_TRAIN, splits.IS_LIGHT])
    assert_df_equality(users, expected, ignore_nullable=True)


def _metrics_dict(df) -> dict[tuple[str, str, str, int], float]:
    return {(r[S.STRATEGY], r[ev.SEGMENT], r[ev.METRIC], r[ev.K]): r[ev.VALUE] for r in df.collect()}


def test_ranking_metrics_match_hand_computed_values(spark):
    relevant = spark.createDataFrame([("u", "x", False), ("u", "y", True)], [S.USER_ID, S.ITEM_ID, splits.IS_COLD])
    users = spark.createDataFrame([("u", 3, True)], [S.USER_ID, splits.N_TRAIN, splits.IS_LIGHT])
    recs = spark.createDataFrame(
        [("good", "u", 1, "x"), ("good", "u", 2, "z"), ("good", "u", 3, "y"), ("bad", "u", 1, "z")],
        [S.STRATEGY, S.USER_ID, S.RANK, S.ITEM_ID])
    m = _metrics_dict(ev.ranking_metrics(recs, relevant, users, ks=[3], cold_k=3))
    idcg = 1 + 1 / math.log2(3)
    assert m[("good", "all", "precision", 3)] == pytest.approx(2 / 3)
    assert m[("good", "all", "recall", 3)] == pytest.approx(1.0)
    assert m[("good", "all", "ndcg", 3)] == pytest.approx((1 + 1 / math.log2(4)) / idcg)
    assert m[("good", "all", "map", 3)] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert m[("good", "all", "hit_rate", 3)] == 1.0
    assert m[("good", "light_users", "ndcg", 3)] == m[("good", "all", "ndcg", 3)]
    assert m[("good", "cold_items", "recall", 3)] == 1.0
    assert m[("bad", "all", "ndcg", 3)] == 0.0 and m[("bad", "cold_items", "recall", 3)] == 0.0
    assert m[("good", "all", "users", 0)] == 1.0


def test_user_without_any_recommendation_counts_as_zero(spark):
    relevant = spark.createDataFrame([("u", "x", False), ("v", "x", False)], [S.USER_ID, S.ITEM_ID, splits.IS_COLD])
    users = spark.createDataFrame([("u", 3, False), ("v", 3, False)], [S.USER_ID, splits.N_TRAIN, splits.IS_LIGHT])
    recs = spark.createDataFrame([("s", "u", 1, "x")], [S.STRATEGY, S.USER_ID, S.RANK, S.ITEM_ID])
    m = _metrics_dict(ev.ranking_metrics(recs, relevant, users, ks=[1], cold_k=1))
    assert m[("s", "all", "recall", 1)] == pytest.approx(0.5)
    assert m[("s", "light_users", "users", 0)] == 0.0


def test_coverage_novelty_and_diversity(spark):
    recs = spark.createDataFrame([("s", "u", 1, "a"), ("s", "u", 2, "b"), ("s", "u", 3, "c"), ("s", "v", 1, "a")],
                                 [S.STRATEGY, S.USER_ID, S.RANK, S.ITEM_ID])
    train = spark.createDataFrame([("u", "a"), ("v", "a"), ("w", "c")], [S.USER_ID, S.ITEM_ID])
    emb = spark.createDataFrame([("a", [1.0, 0.0]), ("b", [0.0, 1.0]), ("c", [0.6, 0.8])], [S.ITEM_ID, S.EMBEDDING])
    m = _metrics_dict(ev.beyond_accuracy_metrics(recs, train, emb, catalogue_size=4, ks=[2, 3]))
    assert m[("s", "all", "coverage", 2)] == pytest.approx(2 / 4)
    info_a, info_b = -math.log2(3 / 4), -math.log2(1 / 4)  # a: 2 of 3 training users (+1 smoothing); b: none
    assert m[("s", "all", "novelty", 2)] == pytest.approx((2 * info_a + info_b) / 3)
    # v's one-item list has no pair; u's top 2 is one orthogonal pair, its top 3 adds dots 0.6 and 0.8.
    assert m[("s", "all", "diversity", 2)] == pytest.approx(1.0)
    assert m[("s", "all", "diversity", 3)] == pytest.approx((1.0 + 0.4 + 0.2) / 3)


def test_sample_users_is_deterministic_and_bounded(spark):
    users = spark.range(50).select(F.col("id").cast("string").alias(S.USER_ID))
    first = [r[S.USER_ID] for r in splits.sample_users(users, 7, seed=3).collect()]
    again = [r[S.USER_ID] for r in splits.sample_users(users, 7, seed=3).collect()]
    assert len(first) == 7 and first == again
    assert splits.sample_users(users, 0, seed=3).count() == 50


def _gate_metrics(hybrid: float, als: float) -> pd.DataFrame:
    return pd.DataFrame({S.STRATEGY: ["hybrid", "als"], "segment": "all", "metric": "ndcg", "k": 10,
                         "value": [hybrid, als]})


def test_gate_passes_a_hybrid_at_or_above_als_and_the_last_night():
    assert gate_failures(_gate_metrics(0.12, 0.10), k=10, max_drop_pct=10, previous_ndcg=0.13) == []


def test_gate_passes_a_hybrid_equal_to_als_up_to_summation_order():
    per_user = [0.1, 0.2, 0.3, 0.05, 0.9, 0.7, 0.6]
    als, hybrid = sum(per_user) / 7, sum(reversed(per_user)) / 7
    assert hybrid < als  # the same values, summed in another order
    assert gate_failures(_gate_metrics(hybrid, als), k=10, max_drop_pct=10, previous_ndcg=None) == []
    assert len(gate_failures(_gate_metrics(als * (1 - 1e-6), als), k=10, max_drop_pct=10, previous_ndcg=None)) == 1


def test_gate_names_the_metric_and_the_gap_when_hybrid_is_below_als():
    [failure] = gate_failures(_gate_metrics(0.08, 0.10), k=10, max_drop_pct=10, previous_ndcg=None)
    assert "ndcg@10" in failure and "0.0800" in failure and "0.1000" in failure and "20.0%" in failure


def test_gate_fails_on_a_drop_beyond_the_allowed_percentage():
    [failure] = gate_failures(_gate_metrics(0.11, 0.10), k=10, max_drop_pct=10, previous_ndcg=0.125)
    assert "12.0% below" in failure and "allowed: 10.0%" in failure


def test_blend_grid_sums_to_one_within_bounds_and_always_uses_content():
    grid = blend_grid(0.25, 0.5, new_item_slots=3)
    assert grid and all(abs(b.als + b.recent + b.popularity + b.content - 1) < 1e-9 for b in grid)
    assert all(max(b.als, b.recent, b.popularity, b.content) <= 0.5 and b.content > 0 for b in grid)
    assert {b.new_item_slots for b in grid} == {3}


def test_gate_refuses_a_hybrid_below_ease_beyond_the_margin_with_the_numbers():
    metrics = pd.concat([_gate_metrics(0.12, 0.10), pd.DataFrame({S.STRATEGY: ["ease"], "segment": "all",
                                                                   "metric": "ndcg", "k": 10, "value": [0.13]})])
    [failure] = gate_failures(metrics, k=10, max_drop_pct=10, previous_ndcg=None, ease_margin_pct=5.0)
    assert "EASE reference 0.1300" in failure and "0.1200" in failure and "7.7%" in failure and "allowed: 5.0%" in failure
    assert gate_failures(metrics, k=10, max_drop_pct=10, previous_ndcg=None, ease_margin_pct=10.0) == []
    # No EASE rows (a catalogue above evaluate.ease_max_items): only ALS is compared.
    assert gate_failures(_gate_metrics(0.12, 0.10), k=10, max_drop_pct=10, previous_ndcg=None, ease_margin_pct=0.0) == []
    # The ALS margin: a hybrid 1% below ALS passes a 2% margin, not a 0% one.
    assert len(gate_failures(_gate_metrics(0.099, 0.10), k=10, max_drop_pct=10, previous_ndcg=None)) == 1
    assert gate_failures(_gate_metrics(0.099, 0.10), k=10, max_drop_pct=10, previous_ndcg=None, als_margin_pct=2.0) == []


def test_gate_judges_a_variant_by_its_own_hybrid_and_names_it():
    metrics = pd.concat([_gate_metrics(0.12, 0.10), pd.DataFrame({
        S.STRATEGY: ["hybrid:short"], "segment": "all", "metric": "ndcg", "k": 10, "value": [0.05]})])
    assert gate_failures(metrics, k=10, max_drop_pct=10, previous_ndcg=None) == []
    [failure] = gate_failures(metrics, k=10, max_drop_pct=10, previous_ndcg=None, strategy="hybrid:short")
    assert failure.startswith("hybrid:short ndcg@10 0.0500 is below ALS-only 0.1000")
