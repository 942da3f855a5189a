"""Approximate top-N by inner product: a faiss IVF index (`recommend.retrieval = "ivf"`), or a
low-dimensional first pass re-ranked exactly (`"rerank"`).

Exact scoring does users x items work: with users and items both growing with the data, ten times
the interactions is a hundred times the scoring. Because the blend is one inner product per
(user, item) (see hybridrec.recommend), an inverted-file index applies: k-means groups the item
vectors into items / list_size lists, and each user scans only the `probes` lists whose centroids
score highest, so the work per user is lists + probes x list_size instead of the whole catalogue.
The lists are approximate; README reports their recall against the exact ones.

Rerank still scores every item, but in `dims` dimensions instead of the blend's full width (449 with
384-d embeddings): a principal-component basis of the item vectors, each signal's columns first
scaled by its weight over its total standard deviation (unscaled, the 384 content columns crowd out
the 1-column popularity signal the blend weighs as much). The best `candidates` items of that pass
are then scored exactly, so every listed score is the exact blend score.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Projection:
    scale: np.ndarray    # (D,) float32 column scale: a signal's weight over its columns' total std
    basis: np.ndarray    # (D, dims) float32 top principal directions of the scaled item vectors
    items: np.ndarray    # (n, dims) float32 the scaled, centred item vectors in that basis


_PROJECTIONS: dict[Any, tuple[np.ndarray, Projection]] = {}


def projection(matrix: np.ndarray, widths: list[int], weights: list[float], *, dims: int,
               cache_key: Any) -> Projection:
    """The first-pass basis for `matrix` (columns: one block of `widths[i]` per signal), once per worker."""
    cached = _PROJECTIONS.get(cache_key)
    if cached is not None and cached[0] is matrix:
        return cached[1]
    edges = np.cumsum([0, *widths])
    scale = np.concatenate([
        np.full(b - a, w / max(float(np.sqrt(matrix[:, a:b].var(axis=0).sum())), 1e-12))
        for a, b, w in zip(edges[:-1], edges[1:], weights, strict=True)]).astype(np.float32)
    centred = matrix * scale
    centred -= centred.mean(axis=0)
    values, vectors = np.linalg.eigh((centred.T @ centred).astype(np.float64))
    basis = np.ascontiguousarray(vectors[:, np.argsort(values)[::-1][:dims]], dtype=np.float32)
    result = Projection(scale, basis, np.ascontiguousarray(centred @ basis))
    if len(_PROJECTIONS) >= 8:  # evaluation scores a few blends per block; nightly one
        _PROJECTIONS.clear()
    _PROJECTIONS[cache_key] = (matrix, result)
    return result


def rerank_top_n(proj: Projection, matrix: np.ndarray, queries: np.ndarray, *, k: int, candidates: int,
                 seen: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, k) item rows and exact inner products with `queries`, best first (ties by row), never a
    `seen` (row, item) pair; -inf scores where fewer than k remain."""
    n_rows, n = len(queries), len(matrix)
    first = ((queries / proj.scale) @ proj.basis) @ proj.items.T
    first[seen] = -np.inf
    c = min(max(candidates, k), n)
    cand = np.argpartition(first, n - c, axis=1)[:, n - c:] if c < n else np.tile(np.arange(n), (n_rows, 1))
    exact = np.empty(cand.shape, dtype=np.float32)
    chunk = max(1, (32 << 20) // (c * matrix.shape[1] * 4))  # gathered candidate vectors: at most 32 MiB
    for start in range(0, n_rows, chunk):
        rows = slice(start, start + chunk)
        exact[rows] = np.einsum("ud,ucd->uc", queries[rows], matrix[cand[rows]])
    exact[~np.isfinite(np.take_along_axis(first, cand, axis=1))] = -np.inf
    kk = min(k, c)
    best = np.argpartition(-exact, kk - 1, axis=1)[:, :kk] if kk < c else np.tile(np.arange(c), (n_rows, 1))
    top, scores = np.take_along_axis(cand, best, axis=1), np.take_along_axis(exact, best, axis=1)
    order = np.lexsort((top, -scores), axis=1)
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(scores, order, axis=1)
