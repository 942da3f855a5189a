"""MMR re-ranking on hand-made vectors with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from hybridrec.scoring.diversity import mmr_order

# Candidates best first: two near-copies of topic A, then topic B, then topic A again.
VECTORS = np.array([[1.0, 0.0], [0.99, 0.141], [0.0, 1.0], [0.98, 0.199]])
VECTORS /= np.linalg.norm(VECTORS, axis=1, keepdims=True)
SCORES = np.array([[4.0, 3.9, 3.0, 2.0]])


def test_lambda_zero_keeps_the_score_order():
    rng = np.random.default_rng(7)
    scores = -np.sort(-rng.normal(size=(5, 8)), axis=1)
    vectors = rng.normal(size=(5, 8, 3))
    vectors /= np.linalg.norm(vectors, axis=2, keepdims=True)
    assert mmr_order(scores, vectors, 6, 0.0).tolist() == [list(range(6))] * 5


def test_a_near_copy_of_the_first_item_gives_way_to_another_topic():
    order = mmr_order(SCORES, VECTORS[None], 3, 0.5)
    assert order.tolist() == [[0, 2, 1]]  # B before the second A; the best item stays first


def test_full_diversity_still_starts_with_the_most_relevant_item():
    assert mmr_order(SCORES, VECTORS[None], 2, 1.0).tolist() == [[0, 2]]


def test_missing_candidates_come_last_and_users_stay_apart():
    scores = np.array([[4.0, 3.9, 3.0, 2.0], [5.0, -np.inf, -np.inf, -np.inf]])
    vectors = np.stack([VECTORS, VECTORS])
    order = mmr_order(scores, vectors, 3, 0.5)
    assert order[0].tolist() == [0, 2, 1]
    assert order[1].tolist() == [0, 1, 2]  # one real candidate, then the -inf columns in order


def test_lambda_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match=r"within \[0, 1\], got 1.5"):
        mmr_order(SCORES, VECTORS[None], 2, 1.5)


def test_float32_scores_with_missing_candidates_never_repeat_a_column():
    scores = np.array([[4.0, 3.0, -np.inf, -np.inf]], dtype=np.float32)
    order = mmr_order(scores, VECTORS[None].astype(np.float32), 4, 0.5)
    assert sorted(order[0].tolist()) == [0, 1, 2, 3]
