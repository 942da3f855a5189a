"""Block scoring on hand-made matrices with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybridrec import schema as S
from hybridrec.recommend import History, ItemIndex, ScoringParams, popularity_top_n, score_block

# Items 0-2 are topic A (embedding axis 0), 3-5 topic B (axis 1). Item 2 and 5 have no ALS factors.
EMB = np.array([[1, 0], [0.9, 0.1], [0.95, 0.05], [0, 1], [0.1, 0.9], [0.05, 0.95]], dtype=np.float32)
EMB /= np.linalg.norm(EMB, axis=1, keepdims=True)
FACTORS = np.array([[1, 0], [0.8, 0.1], [0, 0], [0, 1], [0.1, 0.8], [0, 0]], dtype=np.float32)
INDEX = ItemIndex(
    item_ids=np.array(["a0", "a1", "a2_new", "b0", "b1", "b2_new"]),
    factors=FACTORS, has_factors=np.array([True, True, False, True, True, False]),
    embeddings=EMB, has_embedding=np.ones(6, bool),
    popularity=np.array([5, 4, 0, 3, 2, 0], dtype=np.float32),
)


def params(**kw) -> ScoringParams:
    base = dict(top_n=3, als_weight=0.7, content_weight=0.3, positive_min_weight=1.0, profile_max_items=10,
                recency_half_life_days=30.0, block_bytes=1 << 20, as_of_epoch_s=1_000_000.0)
    return ScoringParams(**{**base, **kw})


def hist(pos, weight=None, ts=None) -> History:
    pos = np.asarray(pos)
    return History(pos, np.asarray(weight if weight is not None else [5.0] * len(pos), float),
                   np.asarray(ts if ts is not None else [900_000.0] * len(pos), float))


def test_topic_a_user_gets_new_topic_a_item_first_and_never_seen_items():
    out = score_block(["u"], [np.array([1.0, 0.0])], [hist([0, 1])], INDEX, params())
    assert out[S.ITEM_ID].tolist()[0] == "a2_new"
    assert not {"a0", "a1"} & set(out[S.ITEM_ID])
    assert out[S.RANK].tolist() == [1, 2, 3]
    new = out[out[S.ITEM_ID] == "a2_new"].iloc[0]
    assert pd.isna(new[S.ALS_SCORE]) and new[S.CONTENT_SCORE] > 0.9
    assert new[S.REASON_ITEM_ID] == "a0"  # the history item closest to it in embedding space


def test_scores_descend_and_n_is_capped_by_unseen_items():
    out = score_block(["u"], [np.array([1.0, 0.0])], [hist([0, 1, 3, 4])], INDEX, params(top_n=10))
    assert sorted(out[S.ITEM_ID]) == ["a2_new", "b2_new"]
    assert out[S.SCORE].is_monotonic_decreasing


def test_user_without_positive_items_is_ranked_by_als_only():
    out = score_block(["u"], [np.array([0.0, 1.0])], [hist([0], weight=[0.5])], INDEX, params(top_n=2))
    assert out[S.ITEM_ID].tolist() == ["b0", "b1"]
    assert out[S.CONTENT_SCORE].isna().all()


def test_recent_history_dominates_the_profile():
    old_a, recent_b = 0.0, 999_000.0
    h = hist([0, 3], ts=[old_a, recent_b])
    out = score_block(["u"], [None], [h], INDEX, params(top_n=1, recency_half_life_days=1.0))
    assert out[S.ITEM_ID].tolist() == ["b2_new"]  # closest to the recent b0; a2_new would win if age were ignored


def test_block_of_users_keeps_users_apart():
    out = score_block(["ua", "ub"], [np.array([1.0, 0.0]), np.array([0.0, 1.0])],
                      [hist([0, 1]), hist([3, 4])], INDEX, params(top_n=1))
    assert dict(zip(out[S.USER_ID], out[S.ITEM_ID], strict=True)) == {"ua": "a2_new", "ub": "b2_new"}


def test_popularity_list_is_sorted_and_normalised():
    top = popularity_top_n(INDEX, 3)
    assert top[S.ITEM_ID].tolist() == ["a0", "a1", "b0"]
    assert top[S.SCORE].tolist() == pytest.approx([1.0, 0.8, 0.6])
