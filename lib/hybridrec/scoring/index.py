"""The item side of scoring, built once per night on the driver and broadcast: every catalogue
item's ALS factors, embedding, popularity and the moments the one-product blend needs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from hybridrec import schema as S


@dataclass(frozen=True)
class ItemIndex:
    """Item-side arrays, row i = item_ids[i]. Missing factors/embeddings are zero rows with a False mask."""
    item_ids: np.ndarray          # (n,) str
    factors: np.ndarray           # (n, rank) float32 ALS factors
    factors_unit: np.ndarray      # (n, rank) the same, L2-normalised (for the recent-item cosine)
    mapped_factors: np.ndarray    # (n, rank) ALS factors predicted from the embedding (ridge)
    has_factors: np.ndarray       # (n,) bool
    embeddings: np.ndarray        # (n, dim) float32, L2-normalised rows as the model gave them
    content: np.ndarray           # (n, dim) embeddings centred on the catalogue mean, re-normalised
    has_embedding: np.ndarray     # (n,) bool
    popularity: np.ndarray        # (n,) float32 recency-decayed users per item
    moments: dict[str, Moments]   # item-vector mean and covariance per (signal, item set), see _index_moments
    first_event_s: np.ndarray = None  # (n,) float64 epoch s of the item's first interaction, NaN = none
    neighbours: sparse.csr_matrix | np.ndarray = None  # (n, n) item-item weights, row i = item i's neighbours
    content_mean: np.ndarray = None   # (dim,) the embeddings' mean `content` is centred on (users' text too)
    # Users with words and ALS factors, whom newcomers with words are matched against (see profiles).
    writer_text: np.ndarray = None    # (m, dim) float32 their words' embeddings, L2-normalised
    writer_factors: np.ndarray = None  # (m, rank) float32 their ALS factors


@dataclass(frozen=True)
class Moments:
    """Mean and population covariance of item vectors: the per-user z-score of a·x is
    (a·x - a·mean) / sqrt(aᵀ·cov·a), without the (users x items) matrix."""
    mean: np.ndarray              # (d,) float64
    cov: np.ndarray               # (d, d) float64


def _moments(x: np.ndarray) -> Moments:
    x = x.astype(np.float64)
    mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
    centred = x - mean
    return Moments(mean, centred.T @ centred / max(1, len(x)))


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norm > 0, x / np.where(norm > 0, norm, 1), 0).astype(np.float32)


def build_item_index(items_pdf: pd.DataFrame, *, mapping_ridge: float = 1.0,
                     neighbours_pdf: pd.DataFrame | None = None) -> ItemIndex:
    """From pandas rows item_id, features (array|None), embedding (array|None), popularity and
    optionally first_event_s; `neighbours_pdf` (item_id, neighbour_id, similarity) from
    transforms.cooccurrence."""
    items_pdf = items_pdf.sort_values(S.ITEM_ID, kind="stable").reset_index(drop=True)

    def stack(column: str) -> tuple[np.ndarray, np.ndarray]:
        present = items_pdf[column].map(lambda v: v is not None and len(v) > 0).to_numpy(bool)
        width = len(items_pdf[column][present].iloc[0]) if present.any() else 1
        out = np.zeros((len(items_pdf), width), dtype=np.float32)
        if present.any():
            out[present] = np.stack(items_pdf[column][present].to_numpy()).astype(np.float32)
        return out, present

    factors, has_factors = stack(S.FEATURES)
    embeddings, has_embedding = stack(S.EMBEDDING)
    # Centring removes the direction every MiniLM vector shares, so cosines spread out.
    content = embeddings.copy()
    content_mean = embeddings[has_embedding].mean(axis=0) if has_embedding.any() else np.zeros(embeddings.shape[1])
    if has_embedding.any():
        content[has_embedding] = _unit_rows(embeddings[has_embedding] - embeddings[has_embedding].mean(axis=0))
    warm_content = has_factors & has_embedding
    if warm_content.any():
        # A warm item without an embedding scores as an average item on content (z = 0), not as a gap.
        content[has_factors & ~has_embedding] = content[warm_content].mean(axis=0)
    factors_unit = _unit_rows(factors)
    mapped_factors = _embedding_to_factors(content, factors, warm_content, mapping_ridge)
    popularity = items_pdf[S.POPULARITY].fillna(0.0).to_numpy(np.float32)
    new_items = ~has_factors & has_embedding
    moments = {
        "warm/als": _moments(factors[has_factors]),
        "warm/recent": _moments(factors_unit[has_factors]),
        "warm/popularity": _moments(np.log1p(popularity[has_factors])[:, None]),
        "warm/content": _moments(content[warm_content]),
        "embedded/content": _moments(content[has_embedding]),
        "new/mapped": _moments(mapped_factors[new_items]),
        "new/content": _moments(content[new_items]),
    }
    item_ids = items_pdf[S.ITEM_ID].to_numpy(str)
    first = (items_pdf[S.FIRST_EVENT_S].to_numpy(np.float64) if S.FIRST_EVENT_S in items_pdf
             else np.full(len(items_pdf), np.nan))
    return ItemIndex(
        item_ids=item_ids,
        factors=factors, factors_unit=factors_unit, mapped_factors=mapped_factors,
        has_factors=has_factors, embeddings=embeddings, content=content, has_embedding=has_embedding,
        popularity=popularity, moments=moments, first_event_s=first,
        neighbours=_neighbour_matrix(item_ids, neighbours_pdf), content_mean=content_mean.astype(np.float32),
    )


def _neighbour_matrix(item_ids: np.ndarray, neighbours_pdf: pd.DataFrame | None) -> sparse.csr_matrix:
    n = len(item_ids)
    if neighbours_pdf is None or neighbours_pdf.empty:
        return sparse.csr_matrix((n, n), dtype=np.float32)
    positions = pd.Index(item_ids)
    rows = positions.get_indexer(neighbours_pdf[S.ITEM_ID])
    cols = positions.get_indexer(neighbours_pdf["neighbour_id"])
    keep = (rows >= 0) & (cols >= 0)
    values = neighbours_pdf["similarity"].to_numpy(np.float32)[keep]
    return sparse.csr_matrix((values, (rows[keep], cols[keep])), shape=(n, n), dtype=np.float32)


def _embedding_to_factors(content: np.ndarray, factors: np.ndarray, train: np.ndarray, ridge: float) -> np.ndarray:
    """Ridge regression embedding -> ALS item factors on warm items, applied to every item."""
    if train.sum() < 2:
        return np.zeros_like(factors)
    x, y = content[train].astype(np.float64), factors[train].astype(np.float64)
    weights = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ y)
    return (content @ weights).astype(np.float32)


def popularity_top_n(index: ItemIndex, top_n: int) -> pd.DataFrame:
    """The most popular items (rank, item_id, score) for users with no history."""
    k = min(top_n, len(index.item_ids))
    order = np.lexsort((np.arange(len(index.item_ids)), -index.popularity))[:k]
    top = index.popularity[order]
    return pd.DataFrame({
        S.RANK: np.arange(1, k + 1, dtype=np.int32),
        S.ITEM_ID: index.item_ids[order],
        S.SCORE: (top / top.max() if k and top.max() > 0 else top).astype(np.float64),
    })
