"""Approximate top-N by inner product: every item scored in a few dimensions then the best re-scored
exactly (`recommend.retrieval = "rerank"`), or the same with the first pass over an inverted file, so a
user scans a few lists of items instead of the catalogue (`"ivf"`).

Exact scoring does users x items work: with users and items both growing with the data, ten times
the interactions is a hundred times the scoring. The blend is one inner product per (user, item)
(see scoring.kernel), so both modes work on item vectors.

The first pass is a principal-component basis of the item vectors (`dims` wide instead of the blend's
449 with 384-d embeddings), each signal's columns first scaled by its weight over its total standard
deviation (unscaled, the 384 content columns crowd out the 1-column popularity signal the blend weighs
as much). Rerank scores every item there. IVF groups the projected items into k-means lists and each
user scans the `probes` lists nearest to it: the inner product search becomes a nearest-neighbour one
by giving every item one more coordinate, sqrt(max |x|^2 - |x|^2), and the query a 0 there, because
k-means lists group items by distance, and an inner-product IVF over the raw vectors (tried first)
kept only a third of the exact top 10. Either way the best `candidates` items are then scored
exactly, so every listed score is the exact blend score; README reports recall against exact lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


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
    return _rescored(matrix, queries, cand, ~np.isfinite(np.take_along_axis(first, cand, axis=1)), k)


def _rescored(matrix: np.ndarray, queries: np.ndarray, cand: np.ndarray, drop: np.ndarray,
              k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row the k best `cand` items by exact inner product (-inf where `drop`), best first, ties by item."""
    n_rows, c = cand.shape
    exact = np.empty(cand.shape, dtype=np.float32)
    chunk = max(1, (32 << 20) // (max(c, 1) * matrix.shape[1] * 4))  # gathered candidate vectors: at most 32 MiB
    for start in range(0, n_rows, chunk):
        rows = slice(start, start + chunk)
        exact[rows] = np.einsum("ud,ucd->uc", queries[rows], matrix[cand[rows]])
    exact[drop] = -np.inf
    kk = min(k, c)
    best = np.argpartition(-exact, kk - 1, axis=1)[:, :kk] if kk < c else np.tile(np.arange(c), (n_rows, 1))
    top, scores = np.take_along_axis(cand, best, axis=1), np.take_along_axis(exact, best, axis=1)
    order = np.lexsort((top, -scores), axis=1)
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(scores, order, axis=1)


_INDEXES: dict[Any, tuple[np.ndarray, Any]] = {}


def ivf_index(proj: Projection, *, list_size: int, cache_key: Any) -> Any:
    """A nearest-neighbour IVF index over the projected items, each with its norm-completing coordinate;
    built once per worker (seeded k-means, so the same lists in every worker and every run)."""
    cached = _INDEXES.get(cache_key)
    if cached is not None and cached[0] is proj.items:
        return cached[1]
    import faiss

    faiss.omp_set_num_threads(1)  # each Spark task already has a core
    n, dims = proj.items.shape
    sq_norms = (proj.items.astype(np.float64) ** 2).sum(axis=1)
    completed = np.hstack([proj.items, np.sqrt(sq_norms.max() - sq_norms)[:, None]]).astype(np.float32)
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dims + 1), dims + 1, max(1, n // list_size), faiss.METRIC_L2)
    index.cp.seed = 7
    index.train(completed)
    index.add(completed)
    if len(_INDEXES) >= 8:
        _INDEXES.clear()
    _INDEXES[cache_key] = (proj.items, index)
    return index


def ivf_top_n(proj: Projection, index: Any, matrix: np.ndarray, queries: np.ndarray, *, k: int, candidates: int,
              probes: int, seen: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """rerank_top_n's rows with the `candidates` found in the `probes` nearest lists. A row those lists
    cannot fill with k unseen items gets rerank_top_n's exhaustive first pass."""
    n_rows, n = len(queries), len(matrix)
    projected = (queries / proj.scale) @ proj.basis
    completed = np.ascontiguousarray(np.hstack([projected, np.zeros((n_rows, 1), projected.dtype)]), dtype=np.float32)
    n_seen = np.bincount(seen[0], minlength=n_rows)
    seen_keys = np.sort(seen[0].astype(np.int64) * n + seen[1])
    kk = min(max(candidates, k), n)
    top = np.zeros((n_rows, min(k, kk)), dtype=np.int64)
    scores = np.full(top.shape, -np.inf, dtype=np.float32)
    index.nprobe = min(probes, index.nlist)
    # Ask for the candidates plus the seen count, in groups of similar history length (one heavy user
    # must not make every search in the block long).
    group = np.ceil(np.log2(n_seen + 1)).astype(np.int64)
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        _, labels = index.search(completed[rows], min(kk + int(n_seen[rows].max()), n))
        cand = np.maximum(labels, 0)
        drop = (labels < 0) | np.isin(rows[:, None].astype(np.int64) * n + cand, seen_keys)
        top[rows], scores[rows] = _rescored(matrix, queries[rows], cand, drop, k)
    short = np.flatnonzero(np.isfinite(scores).sum(axis=1) < np.minimum(top.shape[1], n - n_seen))
    if len(short):
        in_short = np.isin(seen[0], short)
        row_of = np.full(n_rows, -1)
        row_of[short] = np.arange(len(short))
        top[short], scores[short] = rerank_top_n(proj, matrix, queries[short], k=k, candidates=candidates,
                                                 seen=(row_of[seen[0][in_short]], seen[1][in_short]))
    return top, scores
