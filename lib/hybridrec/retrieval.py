"""Approximate top-N by inner product through a faiss IVF index (`recommend.retrieval = "ivf"`).

Exact scoring does users x items work: with users and items both growing with the data, ten times
the interactions is a hundred times the scoring. Because the blend is one inner product per
(user, item) (see hybridrec.recommend), an inverted-file index applies: k-means groups the item
vectors into items / list_size lists, and each user scans only the `probes` lists whose centroids
score highest, so the work per user is lists + probes x list_size instead of the whole catalogue.
The lists are approximate; README reports their recall against the exact ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_INDEXES: dict[Any, tuple[np.ndarray, Any]] = {}


def ivf_index(matrix: np.ndarray, *, list_size: int, cache_key: Any) -> Any:
    """An IVF inner-product index over the rows of `matrix`, built once per worker (seeded k-means)."""
    cached = _INDEXES.get(cache_key)
    if cached is not None and cached[0] is matrix:
        return cached[1]
    import faiss

    faiss.omp_set_num_threads(1)  # each Spark task already has a core
    n, dim = matrix.shape
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, max(1, n // list_size), faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 7  # the same lists in every worker and every run
    index.train(matrix)
    index.add(matrix)
    _INDEXES.clear()  # one item matrix at a time per worker
    _INDEXES[cache_key] = (matrix, index)
    return index


def ivf_top_n(index: Any, queries: np.ndarray, *, k: int, probes: int,
              seen: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, k) item rows and inner products, best first, skipping each row's `seen` (row, item)
    pairs; -1 and -inf where fewer than k remain. A row the probed lists cannot fill is searched
    again over every list (exact)."""
    n_rows = len(queries)
    top = np.full((n_rows, k), -1, dtype=np.int64)
    scores = np.full((n_rows, k), -np.inf, dtype=np.float32)
    n_seen = np.bincount(seen[0], minlength=n_rows)
    seen_keys = np.sort(seen[0].astype(np.int64) * index.ntotal + seen[1])
    # Ask for k plus the seen count, in groups of similar history length (one heavy user must not
    # make every search in the block long).
    group = np.ceil(np.log2(n_seen + 1)).astype(np.int64)
    for probe in (min(probes, index.nlist), index.nlist):
        index.nprobe = probe
        todo = np.flatnonzero(~np.isfinite(scores[:, -1]))
        for g in np.unique(group[todo]):
            rows = todo[group[todo] == g]
            found, labels = index.search(np.ascontiguousarray(queries[rows]), k + int(n_seen[rows].max()))
            keys = rows[:, None].astype(np.int64) * index.ntotal + labels
            drop = (labels < 0) | np.isin(keys, seen_keys)
            found = np.where(drop, -np.inf, found)
            order = np.argsort(-found, axis=1, kind="stable")[:, :k]
            top[rows] = np.where(np.isfinite(np.take_along_axis(found, order, axis=1)),
                                 np.take_along_axis(labels, order, axis=1), -1)
            scores[rows] = np.take_along_axis(found, order, axis=1)
        if probe == index.nlist:
            break
    return top, scores
