"""Maximal-marginal-relevance re-ranking of a block of users' candidate lists: pure numpy.

Each list is chosen greedily: the next item maximises (1 - λ)·relevance - λ·(its highest cosine to
an item already chosen). Relevance is each user's candidate scores min-max scaled to [0, 1], so λ
means the same for every blend whatever its score scale. λ = 0 keeps the score order; λ = 1 picks
the item least like the ones before it (the first is still the most relevant). The whole block moves
one step at a time: k steps of (users x candidates) work, no Python loop over users.
"""

from __future__ import annotations

import numpy as np


def mmr_order(scores: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """Columns of `scores` in MMR order, k per row.

    scores: (users, m) candidate scores, each row best first (as top-N selection returns them), -inf
    where a row has no candidate; vectors: (users, m, d) the candidates' unit-length item vectors
    (zero rows: like nothing); diversity: λ in [0, 1]. Ties go to the better-scored column. Rows with
    fewer than k candidates end with their -inf columns, in column order.
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be within [0, 1], got {diversity}")
    scores = np.asarray(scores, dtype=np.float64)  # float32 cannot hold the -1e300 below
    n_users, m = scores.shape
    k = min(k, m)
    finite = np.isfinite(scores)
    low = np.where(finite, scores, np.inf).min(axis=1, keepdims=True)
    high = np.where(finite, scores, -np.inf).max(axis=1, keepdims=True)
    span = np.where(high > low, high - low, 1.0)
    relevance = np.where(finite, (scores - np.where(finite.any(axis=1, keepdims=True), low, 0.0)) / span, 0.0)
    max_similarity = np.zeros((n_users, m))     # no penalty before the first pick
    available = np.ones((n_users, m), dtype=bool)
    rows = np.arange(n_users)
    order = np.zeros((n_users, k), dtype=np.int64)
    for step in range(k):
        gain = (1.0 - diversity) * relevance - diversity * max_similarity
        # Candidates before -inf columns, and a column only once; argmax takes the first (best-scored) tie.
        gain = np.where(finite, gain, -1e300)
        pick = np.argmax(np.where(available, gain, -np.inf), axis=1)
        order[:, step] = pick
        available[rows, pick] = False
        similarity = np.einsum("umd,ud->um", vectors, vectors[rows, pick])
        max_similarity = similarity if step == 0 else np.maximum(max_similarity, similarity)
    return order


MMR_BLOCK_USERS = 256  # users re-ranked together: their (users, pool, dim) candidate vectors stay ~60 MB


def mmr_rerank(scores: np.ndarray, items: np.ndarray, item_vectors: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """mmr_order for lists of item positions: `items` (users, m) index the rows of `item_vectors`
    (the index's centred content vectors), gathered a block of users at a time."""
    order = np.zeros((len(scores), min(k, scores.shape[1])), dtype=np.int64)
    for start in range(0, len(scores), MMR_BLOCK_USERS):
        part = slice(start, start + MMR_BLOCK_USERS)
        order[part] = mmr_order(scores[part], item_vectors[items[part]], k, diversity)
    return order
