import numpy as np
import pytest

from hybridrec.scoring import retrieval


def _topic_items(seed: int, n: int = 4000, dims: int = 8, topics: int = 20):
    """Items around topic centres with norms spread over a lognormal (popular items score higher for
    everyone), and queries near a topic: the shape of the blend's item vectors."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, dims)) * 2
    items = (centres[rng.integers(topics, size=n)] + rng.normal(size=(n, dims))) * rng.lognormal(0, 0.5, size=(n, 1))
    queries = centres[rng.integers(topics, size=50)] + rng.normal(size=(50, dims)) * 0.5
    return items.astype(np.float32), queries.astype(np.float32)


def test_ivf_over_norm_completed_items_finds_the_inner_product_top_10_in_5_of_100_lists():
    recalls = []
    for seed in range(3):
        items, queries = _topic_items(seed)
        identity = retrieval.Projection(np.ones(items.shape[1], np.float32), np.eye(items.shape[1], dtype=np.float32),
                                        items)
        index = retrieval.ivf_index(identity, list_size=40, cache_key=("test", seed))
        assert index.nlist == 100
        top, scores = retrieval.ivf_top_n(identity, index, items, queries, k=10, candidates=10, probes=5,
                                          seen=(np.zeros(0, np.int64), np.zeros(0, np.int64)))
        exact = queries @ items.T
        assert scores == pytest.approx(np.take_along_axis(exact, top, axis=1), rel=1e-5)
        best = np.argsort(-exact, axis=1)[:, :10]
        recalls.append(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, best, strict=True)]))
    # 0.93 here; an inner-product IVF over the same items (lists by raw inner product) keeps 0.62.
    assert np.mean(recalls) > 0.85
