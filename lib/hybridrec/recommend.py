"""Hybrid top-N scoring, block-wise inside Python workers.

Item-side matrices (ALS factors, embeddings, popularity) are broadcast once; users arrive in
Arrow batches with their history and factors. For each block of users the worker computes, as
matrix products rather than a cross join:

- als: U·Vᵀ, the ALS dot product;
- recent: mean cosine, in ALS factor space, to the user's few most recent positive items
  (MovieLens users rate in sessions, so what they did last predicts what comes next);
- popularity: log of the recency-decayed number of users per item;
- content: cosine of centred item embeddings to the user's recency-weighted positive profile.

Each signal is z-normalised per user over items with interactions and blended with the configured
weights. Every signal is linear in an item-side vector (a·x_i), so its per-user mean and standard
deviation follow from the item vectors' mean and covariance (computed once per index), and the whole
blend is one matrix product Q·Xᵀ plus a per-user constant: a block of users costs one product over
the item matrix and one top-N selection, not a dozen full (users x items) passes.

Items with no interactions yet (no ALS factors) cannot be ranked by those signals; they get their
own score, half "what ALS would say" through a ridge regression from embeddings to ALS item
factors trained on the warm items, half content, and fill `new_item_slots` places at the end of the
list. Seen items are masked; top-N uses argpartition. Unlike `recommendForAllUsers`, seen items are
excluded. One pass can score several blends (`ScoringParams.blends`), which is how evaluation and
tuning compare strategies on the same factors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark import Broadcast
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from hybridrec import retrieval
from hybridrec import schema as S
from hybridrec.config import RecommendConfig
from hybridrec.ingest import day_end

ITEM_POS = "item_pos"
HISTORY = "history"
HIST_POS = "hist_pos"
HIST_WEIGHT = "hist_weight"
HIST_TS = "hist_ts"
POPULARITY = "popularity"
HYBRID = "hybrid"
NEW_ITEM_STRATEGY = "new_item"
POPULARITY_STRATEGY = "popularity"

SCORED_SCHEMA = T.StructType([
    T.StructField(S.USER_ID, T.StringType(), False),
    T.StructField(S.RANK, T.IntegerType(), False),
    T.StructField(S.ITEM_ID, T.StringType(), False),
    T.StructField(S.SCORE, T.DoubleType(), False),
    T.StructField(S.ALS_SCORE, T.DoubleType(), True),
    T.StructField(S.CONTENT_SCORE, T.DoubleType(), True),
    T.StructField(S.REASON_ITEM_ID, T.StringType(), True),
    T.StructField(S.STRATEGY, T.StringType(), False),
])


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


@dataclass(frozen=True)
class History:
    """One user's interacted items: positions in the ItemIndex, summed weights, last event (epoch s)."""
    pos: np.ndarray
    weight: np.ndarray
    ts: np.ndarray


@dataclass(frozen=True)
class Blend:
    """Weights of the per-user z-scored signals, and how many list places go to new items."""
    als: float
    recent: float
    popularity: float
    content: float
    new_item_slots: int

    @property
    def uses_interactions(self) -> bool:
        return self.als + self.recent + self.popularity > 0


@dataclass(frozen=True)
class ScoringParams:
    top_n: int
    blends: tuple[tuple[str, Blend], ...]   # (strategy name, blend); one list per user per blend
    positive_min_weight: float
    recent_items: int
    profile_max_items: int
    recency_half_life_days: float
    new_item_mapped_weight: float
    block_bytes: int
    as_of_epoch_s: float          # end of the run date: recency is measured from here
    mark_new_items: bool = True   # new-item rows say strategy "new_item" (evaluation keeps the blend name)
    explain: bool = True          # fill reason_item_id (evaluation does not need it)
    retrieval: str = "exact"      # exact | rerank | ivf (approximate: see hybridrec.retrieval)
    ivf_list_size: int = 64
    ivf_probes: int = 16
    rerank_dims: int = 96
    rerank_candidates: int = 300


def blend_from_config(cfg: RecommendConfig) -> Blend:
    return Blend(als=cfg.als_weight, recent=cfg.recent_weight, popularity=cfg.popularity_weight,
                 content=cfg.content_weight, new_item_slots=cfg.new_item_slots)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norm > 0, x / np.where(norm > 0, norm, 1), 0).astype(np.float32)


def build_item_index(items_pdf: pd.DataFrame, *, mapping_ridge: float = 1.0) -> ItemIndex:
    """From pandas rows item_id, features (array|None), embedding (array|None), popularity."""
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
    if has_embedding.any():
        content[has_embedding] = _unit_rows(embeddings[has_embedding] - embeddings[has_embedding].mean(axis=0))
    warm_content = has_factors & has_embedding
    if warm_content.any():
        # A warm item without an embedding scores as an average item on content (z = 0), not as a gap.
        content[has_factors & ~has_embedding] = content[warm_content].mean(axis=0)
    factors_unit = _unit_rows(factors)
    mapped_factors = _embedding_to_factors(content, factors, warm_content, mapping_ridge)
    popularity = items_pdf[POPULARITY].fillna(0.0).to_numpy(np.float32)
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
    return ItemIndex(
        item_ids=items_pdf[S.ITEM_ID].to_numpy(str),
        factors=factors, factors_unit=factors_unit, mapped_factors=mapped_factors,
        has_factors=has_factors, embeddings=embeddings, content=content, has_embedding=has_embedding,
        popularity=popularity, moments=moments,
    )


def _embedding_to_factors(content: np.ndarray, factors: np.ndarray, train: np.ndarray, ridge: float) -> np.ndarray:
    """Ridge regression embedding -> ALS item factors on warm items, applied to every item."""
    if train.sum() < 2:
        return np.zeros_like(factors)
    x, y = content[train].astype(np.float64), factors[train].astype(np.float64)
    weights = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ y)
    return (content @ weights).astype(np.float32)


def scoring_params(cfg: RecommendConfig, positive_min_weight: float, ds: date,
                   blends: tuple[tuple[str, Blend], ...] | None = None) -> ScoringParams:
    return ScoringParams(
        top_n=cfg.top_n, blends=blends or ((HYBRID, blend_from_config(cfg)),),
        positive_min_weight=positive_min_weight, recent_items=cfg.recent_items,
        profile_max_items=cfg.profile_max_items, recency_half_life_days=cfg.recency_half_life_days,
        new_item_mapped_weight=cfg.new_item_mapped_weight, block_bytes=cfg.block_bytes,
        retrieval=cfg.retrieval, ivf_list_size=cfg.ivf_list_size, ivf_probes=cfg.ivf_probes,
        rerank_dims=cfg.rerank_dims, rerank_candidates=cfg.rerank_candidates,
        as_of_epoch_s=day_end(ds).timestamp(),
    )


def with_popularity(interactions_df: DataFrame, *, as_of_epoch_s: float, half_life_days: float) -> DataFrame:
    """item_id, popularity: recency-decayed count of distinct users per item."""
    per_user = interactions_df.groupBy(S.USER_ID, S.ITEM_ID).agg(F.max(S.EVENT_TS).alias("_last"))
    age_days = (F.lit(as_of_epoch_s) - F.unix_timestamp("_last")) / 86400.0
    decay = F.pow(F.lit(0.5), age_days / half_life_days)
    return per_user.groupBy(S.ITEM_ID).agg(F.sum(decay).alias(POPULARITY))


def with_histories(interactions_df: DataFrame, item_positions_df: DataFrame, user_factors_df: DataFrame) -> DataFrame:
    """One row per user with history: user_id, hist_pos, hist_weight, hist_ts (aligned arrays), features."""
    per_item = interactions_df.groupBy(S.USER_ID, S.ITEM_ID).agg(
        F.sum(S.WEIGHT).alias("weight"), F.max(F.unix_timestamp(S.EVENT_TS)).alias("ts")
    )
    positioned = per_item.join(item_positions_df, S.ITEM_ID)
    histories = positioned.groupBy(S.USER_ID).agg(
        F.collect_list(F.struct(F.col(ITEM_POS).alias("pos"), "weight", "ts")).alias(HISTORY)
    )
    # Field extraction from one array of structs keeps the three arrays aligned.
    histories = histories.select(
        S.USER_ID,
        F.col(HISTORY)["pos"].alias(HIST_POS),
        F.col(HISTORY)["weight"].alias(HIST_WEIGHT),
        F.col(HISTORY)["ts"].cast("array<double>").alias(HIST_TS),
    )
    factors = user_factors_df.select(S.USER_ID, S.FEATURES)
    return histories.join(factors, S.USER_ID, "left")


def _positives(hist: History, index: ItemIndex, p: ScoringParams, limit: int, mask: np.ndarray):
    """The user's most recent positive history items (newest first) that have `mask`."""
    keep = (hist.weight >= p.positive_min_weight) & mask[hist.pos]
    pos, weight, ts = hist.pos[keep], hist.weight[keep], hist.ts[keep]
    recent = np.argsort(-ts, kind="stable")[:limit]
    return pos[recent], weight[recent], ts[recent]


def _profiles(histories: list[History], index: ItemIndex, p: ScoringParams) -> tuple[np.ndarray, list[np.ndarray]]:
    """Content profile per user (recency-weighted mean of centred embeddings) and its source items."""
    profiles = np.zeros((len(histories), index.content.shape[1]), dtype=np.float32)
    sources: list[np.ndarray] = []
    for row, hist in enumerate(histories):
        pos, weight, ts = _positives(hist, index, p, p.profile_max_items, index.has_embedding)
        sources.append(pos)
        if len(pos) == 0:
            continue
        age_days = np.maximum(0.0, (p.as_of_epoch_s - ts) / 86400.0)
        w = weight * np.power(0.5, age_days / p.recency_half_life_days)
        vec = (w[:, None] * index.content[pos]).sum(axis=0)
        norm = np.linalg.norm(vec)
        if norm > 0:
            profiles[row] = vec / norm
    return profiles, sources


def _recent_queries(histories: list[History], index: ItemIndex, p: ScoringParams) -> tuple[np.ndarray, np.ndarray]:
    """Mean unit ALS factor of each user's recent positive items (its dot with a unit item factor is
    the mean cosine to them), and whether the user has any."""
    out = np.zeros((len(histories), index.factors.shape[1]), dtype=np.float32)
    present = np.zeros(len(histories), dtype=bool)
    for row, hist in enumerate(histories):
        pos, _, _ = _positives(hist, index, p, p.recent_items, index.has_factors)
        if len(pos):
            out[row], present[row] = index.factors_unit[pos].mean(axis=0), True
    return out, present


@dataclass(frozen=True)
class _Space:
    """The items one kind of list ranks, with each signal's item vectors restricted to them."""
    cols: np.ndarray                 # item positions, column order of the score matrix
    col_of: np.ndarray               # (n_items,) position -> column, -1 outside the space
    items: dict[str, np.ndarray]     # signal -> (n_items, d) item vectors of the whole index (not copied)
    moments: dict[str, Moments]
    stacked: dict[tuple[str, ...], np.ndarray]  # signals -> their vectors side by side (built on first use)

    def matrix(self, signals: tuple[str, ...]) -> np.ndarray:
        if signals not in self.stacked:
            self.stacked[signals] = np.concatenate([self.items[s][self.cols] for s in signals], axis=1)
        return self.stacked[signals]


_SPACES: dict[int, tuple[ItemIndex, dict[str, _Space]]] = {}


def _spaces(index: ItemIndex) -> dict[str, _Space]:
    """warm: items with factors (interaction blends); embedded: items with an embedding (content-only
    blends); new: embedded items without factors (new-item places). Cached per worker and index."""
    cached = _SPACES.get(id(index))
    if cached is not None and cached[0] is index:
        return cached[1]

    def space(mask: np.ndarray, name: str, items: dict[str, np.ndarray]) -> _Space:
        cols = np.flatnonzero(mask)
        col_of = np.full(len(mask), -1, dtype=np.int64)
        col_of[cols] = np.arange(len(cols))
        moments = {s: index.moments[f"{name}/{s}"] for s in items}
        return _Space(cols, col_of, items, moments, {})

    log_popularity = np.log1p(index.popularity)[:, None].astype(np.float32)
    spaces = {
        "warm": space(index.has_factors, "warm", {"als": index.factors, "recent": index.factors_unit,
                                                  "popularity": log_popularity, "content": index.content}),
        "embedded": space(index.has_embedding, "embedded", {"content": index.content}),
        "new": space(~index.has_factors & index.has_embedding, "new",
                     {"mapped": index.mapped_factors, "content": index.content}),
    }
    _SPACES.clear()  # one index per worker at a time (evaluation scores several, one after another)
    _SPACES[id(index)] = (index, spaces)
    return spaces


def _blend_query(space: _Space, queries: dict[str, tuple[np.ndarray, np.ndarray]],
                 weights: dict[str, float]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """The blend as (signals, Q, offset, has_signal): a user's weighted mean of z-scored signals over
    the signals they have (`queries`: signal -> (user vectors, present)) is Q·x + offset."""
    active = tuple(s for s, w in weights.items() if w > 0)
    if not active:
        raise ValueError("a blend needs at least one positive weight")
    n_users = len(next(iter(queries.values()))[1])
    total = sum(weights[s] * queries[s][1] for s in active)
    has_total = total > 0
    parts, offset = [], np.zeros(n_users)
    for s in active:
        a, present = queries[s]
        a = a.astype(np.float64)
        m = space.moments[s]
        mean = a @ m.mean
        std = np.sqrt(np.maximum(((a @ m.cov) * a).sum(axis=1), 0.0)).clip(min=1e-6)
        scale = np.where(present & has_total, weights[s] / (std * np.where(has_total, total, 1)), 0.0)
        parts.append((a * scale[:, None]).astype(np.float32))
        offset -= scale * mean
    return active, np.concatenate(parts, axis=1), offset.astype(np.float32), has_total


def _blend_scores(space: _Space, queries: dict[str, tuple[np.ndarray, np.ndarray]],
                  weights: dict[str, float], seen: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(users, space columns) blended scores; -inf for seen items and users with no signal."""
    active, q, offset, has_total = _blend_query(space, queries, weights)
    score = q @ space.matrix(active).T
    score += offset[:, None]
    score[~has_total] = -np.inf
    rows, cols = seen[0], space.col_of[seen[1]]
    score[rows[cols >= 0], cols[cols >= 0]] = -np.inf  # never recommend what the user already interacted with
    return score


def _ranked_blend(space: _Space, queries: dict[str, tuple[np.ndarray, np.ndarray]], weights: dict[str, float],
                  seen: tuple[np.ndarray, np.ndarray], p: ScoringParams, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k positions and scores of one blend: exact, or approximate (p.retrieval: rerank, ivf)."""
    if p.retrieval in ("rerank", "ivf") and len(space.cols) > p.rerank_candidates:
        active, q, offset, has_total = _blend_query(space, queries, weights)
        matrix = space.matrix(active)
        if matrix.shape[1] > p.rerank_dims:  # narrower blends are cheaper exact
            rows, cols = seen[0], space.col_of[seen[1]]
            seen_here = (rows[cols >= 0], cols[cols >= 0])
            key = (id(space), active, tuple(weights[s] for s in active), p.rerank_dims)
            proj = retrieval.projection(matrix, [space.items[s].shape[1] for s in active],
                                        [weights[s] for s in active], dims=p.rerank_dims, cache_key=key)
            if p.retrieval == "ivf" and len(space.cols) >= 4 * p.ivf_list_size:
                index = retrieval.ivf_index(proj, list_size=p.ivf_list_size, cache_key=(*key, p.ivf_list_size))
                top, scores = retrieval.ivf_top_n(proj, index, matrix, q, k=k, candidates=p.rerank_candidates,
                                                  probes=p.ivf_probes, seen=seen_here)
            else:
                top, scores = retrieval.rerank_top_n(proj, matrix, q, k=k, candidates=p.rerank_candidates,
                                                     seen=seen_here)
            scores = scores + offset[:, None]
            scores[~has_total] = -np.inf
            return space.cols[top], scores
    return _ranked(space, _blend_scores(space, queries, weights, seen), k)


def _top(score: np.ndarray, k: int) -> np.ndarray:
    """Per row, the column indices of the k largest scores, best first (ties by position)."""
    n = score.shape[1]
    if k <= 0 or n == 0:
        return np.zeros((score.shape[0], 0), dtype=np.int64)
    k = min(k, n)
    top = np.argpartition(score, n - k, axis=1)[:, n - k:] if k < n else np.tile(np.arange(n), (score.shape[0], 1))
    order = np.lexsort((top, -np.take_along_axis(score, top, axis=1)), axis=1)
    return np.take_along_axis(top, order, axis=1)


def _ranked(space: _Space, score: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item positions and their scores (-inf where a row has fewer than k candidates)."""
    top = _top(score, k)
    return space.cols[top], np.take_along_axis(score, top, axis=1)


@dataclass(frozen=True)
class ScoredRows:
    """One block's top-N rows as arrays: `rows` index the block's users, item columns are ItemIndex positions."""
    rows: np.ndarray        # int64
    rank: np.ndarray        # int32, 1 = best
    items: np.ndarray       # int64
    score: np.ndarray       # float64
    als: np.ndarray         # float64, NaN = null
    content: np.ndarray     # float64, NaN = null
    reason: np.ndarray      # int64 position of the reason item, -1 = null
    strategy: np.ndarray    # int64 index into `names`
    names: tuple[str, ...]


def score_block(
    user_ids: list[str], factors: list, histories: list[History], index: ItemIndex, p: ScoringParams
) -> pd.DataFrame:
    """Top-N rows (SCORED_SCHEMA) for one block of users, one list per blend in `p.blends`."""
    r = score_rows(factors, histories, index, p)
    reasons = index.item_ids[np.maximum(r.reason, 0)].astype(object)
    reasons[r.reason < 0] = None
    return pd.DataFrame({
        S.USER_ID: np.asarray(user_ids, dtype=object)[r.rows], S.RANK: r.rank, S.ITEM_ID: index.item_ids[r.items],
        S.SCORE: r.score, S.ALS_SCORE: _nullable(r.als), S.CONTENT_SCORE: _nullable(r.content),
        S.REASON_ITEM_ID: reasons, S.STRATEGY: np.asarray(r.names, dtype=object)[r.strategy],
    })


def score_rows(factors: list, histories: list[History], index: ItemIndex, p: ScoringParams) -> ScoredRows:
    """score_block's rows, before user and item ids are attached."""
    n_users = len(histories)
    spaces = _spaces(index)
    has_user_factors = np.array([f is not None and len(f) > 0 for f in factors], dtype=bool)
    user_factors = np.zeros((n_users, index.factors.shape[1]), dtype=np.float32)
    if has_user_factors.any():
        user_factors[has_user_factors] = np.stack([f for f in factors if f is not None and len(f) > 0])
    profiles, profile_sources = _profiles(histories, index, p)
    no_profile = np.array([len(s) == 0 for s in profile_sources], dtype=bool)
    seen = (np.repeat(np.arange(n_users), [len(h.pos) for h in histories]),
            np.concatenate([h.pos for h in histories]) if histories else np.zeros(0, np.int64))
    blends = [b for _, b in p.blends]
    queries = {"als": (user_factors, has_user_factors), "content": (profiles, ~no_profile),
               "popularity": (np.ones((n_users, 1), np.float32), np.ones(n_users, bool)),
               "mapped": (user_factors, has_user_factors)}
    if any(b.recent > 0 for b in blends):
        queries["recent"] = _recent_queries(histories, index, p)

    new_space = spaces["new"]
    new_top = new_scores = None
    max_slots = max([b.new_item_slots for b in blends if b.uses_interactions] or [0])
    if max_slots and len(new_space.cols):
        # New items are few (a few % of the catalogue): scoring them all costs less than any index.
        new_score = _blend_scores(new_space, queries, {"mapped": p.new_item_mapped_weight,
                                                       "content": 1.0 - p.new_item_mapped_weight}, seen)
        new_top, new_scores = _ranked(new_space, new_score, max_slots)

    names = (*[name for name, _ in p.blends], NEW_ITEM_STRATEGY)
    parts = []
    for code, (_, blend) in enumerate(p.blends):
        weights = {"als": blend.als, "recent": blend.recent, "popularity": blend.popularity, "content": blend.content}
        # A content-only blend ranks every item with an embedding; otherwise new items only get slots.
        space = spaces["warm"] if blend.uses_interactions else spaces["embedded"]
        main_top, main_scores = _ranked_blend(space, queries, weights, seen, p, p.top_n)
        slots = min(blend.new_item_slots, max_slots) if (new_top is not None and blend.uses_interactions) else 0
        top_new = new_top[:, :slots] if slots else np.zeros((n_users, 0), dtype=np.int64)
        scores_new = new_scores[:, :slots] if slots else np.zeros((n_users, 0))
        new_keep = np.isfinite(scores_new)
        # Finite scores come first in each top list, so "keep" is a prefix of every row.
        room = p.top_n - new_keep.sum(axis=1, keepdims=True)
        main_keep = np.isfinite(main_scores) & (np.cumsum(np.isfinite(main_scores), axis=1) <= room)
        keep = np.concatenate([main_keep, new_keep], axis=1)
        if not keep.any():
            continue
        items = np.concatenate([main_top, top_new], axis=1)[keep]
        rows = np.broadcast_to(np.arange(n_users)[:, None], keep.shape)[keep]
        is_new = np.concatenate([np.zeros_like(main_keep), np.ones_like(new_keep)], axis=1)[keep]
        strategy = np.where(is_new & p.mark_new_items, len(names) - 1, code)
        als = np.einsum("ij,ij->i", user_factors[rows], index.factors[items])
        parts.append(ScoredRows(
            rows=rows, rank=np.cumsum(keep, axis=1)[keep].astype(np.int32), items=items,
            score=np.concatenate([main_scores, scores_new], axis=1)[keep].astype(np.float64),
            als=np.where(has_user_factors[rows] & index.has_factors[items], als, np.nan).astype(np.float64),
            content=_pair_content(profiles, no_profile, index, rows, items).astype(np.float64),
            reason=(_block_reasons(rows, items, profile_sources, histories, index) if p.explain
                    else np.full(len(items), -1, dtype=np.int64)),
            strategy=strategy, names=names))
    return ScoredRows(**{f: np.concatenate([getattr(r, f) for r in parts]) if parts else np.zeros(0, t)
                         for f, t in _ROW_DTYPES.items()}, names=names)


_ROW_DTYPES = {"rows": np.int64, "rank": np.int32, "items": np.int64, "score": np.float64, "als": np.float64,
               "content": np.float64, "reason": np.int64, "strategy": np.int64}


def _pair_content(profiles: np.ndarray, no_profile: np.ndarray, index: ItemIndex, rows: np.ndarray,
                  items: np.ndarray) -> np.ndarray:
    """content_score for the listed (user, item) pairs only, as the full matrix would give it."""
    values = np.einsum("ij,ij->i", profiles[rows], index.content[items]).astype(np.float32)
    return np.where(index.has_embedding[items] & ~no_profile[rows], values, np.nan)


def _block_reasons(rows: np.ndarray, items: np.ndarray, profile_sources: list[np.ndarray],
                   histories: list[History], index: ItemIndex) -> np.ndarray:
    out = np.full(len(items), -1, dtype=np.int64)
    for row in np.unique(rows):
        at = rows == row
        out[at] = _reasons(items[at], profile_sources[row], histories[row], index)
    return out


def _reasons(items: np.ndarray, profile_source: np.ndarray, hist: History, index: ItemIndex) -> np.ndarray:
    """Per recommended item, the position of the history item whose embedding is closest ("because you
    liked ..."); -1 where there is none."""
    pool = profile_source if len(profile_source) else hist.pos
    pool = pool[index.has_embedding[pool]]
    if not len(pool):
        return np.full(len(items), -1, dtype=np.int64)
    sims = index.embeddings[items] @ index.embeddings[pool].T
    return np.where(index.has_embedding[items], pool[np.argmax(sims, axis=1)], -1)


def _nullable(values: np.ndarray) -> pd.Series:
    return pd.Series(np.where(np.isfinite(values), values, np.nan), dtype="float64")


def with_hybrid_recommendations(
    histories_df: DataFrame, index_bc: Broadcast, params: ScoringParams
) -> DataFrame:
    """Top-N hybrid rows (SCORED_SCHEMA) for every user in `histories_df`.

    Arrow in and out (mapInArrow): ids are taken from Arrow string arrays by position, so no Python
    string object is made per output row (with pandas, building and converting them cost as much as
    the scoring itself)."""

    def score_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        index: ItemIndex = index_bc.value  # unpickled once per worker process
        n_items = max(1, len(index.item_ids))
        # Per (user, item): a float32 score and argpartition's int64 index; keep them inside block_bytes.
        block = max(1, params.block_bytes // (n_items * 16))
        item_ids = schema = None
        for batch in batches:
            if schema is None:
                large = batch.column(S.USER_ID).type == pa.large_string()
                schema = to_arrow_schema(SCORED_SCHEMA, prefers_large_types=large)
                item_ids = pa.array(index.item_ids, type=schema.field(S.ITEM_ID).type)
            for start in range(0, batch.num_rows, block):
                part = batch.slice(start, block)
                pos, weight, ts = (_list_rows(part.column(c), t) for c, t in
                                   ((HIST_POS, np.int64), (HIST_WEIGHT, np.float64), (HIST_TS, np.float64)))
                histories = [History(*h) for h in zip(pos, weight, ts, strict=True)]
                rows = score_rows(_list_rows(part.column(S.FEATURES), np.float32), histories, index, params)
                yield _arrow_rows(rows, part.column(S.USER_ID), item_ids, schema)

    return histories_df.mapInArrow(score_partition, SCORED_SCHEMA)


def _list_rows(column: pa.Array, dtype: type) -> list[np.ndarray]:
    """Each row of an Arrow list column as a numpy view (empty where null): no Python object per element."""
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    return [values[offsets[i]:offsets[i + 1]] if valid[i] else values[:0] for i in range(len(column))]


def _arrow_rows(r: ScoredRows, user_ids: pa.Array, item_ids: pa.Array, schema: pa.Schema) -> pa.RecordBatch:
    def nullable(values: np.ndarray) -> pa.Array:
        return pa.array(values, type=pa.float64(), mask=~np.isfinite(values))

    strategies = pa.array(r.names, type=schema.field(S.STRATEGY).type)
    return pa.RecordBatch.from_arrays([
        user_ids.take(r.rows), pa.array(r.rank, type=pa.int32()), item_ids.take(r.items),
        pa.array(r.score, type=pa.float64()), nullable(r.als), nullable(r.content),
        item_ids.take(pa.array(r.reason, mask=r.reason < 0)), strategies.take(r.strategy),
    ], schema=schema)


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


def with_popularity_recommendations(users_df: DataFrame, top_df: DataFrame) -> DataFrame:
    """SCORED_SCHEMA rows giving every user in `users_df` the popularity list `top_df`."""
    rows = users_df.select(S.USER_ID).crossJoin(F.broadcast(top_df))
    return rows.select(
        S.USER_ID, S.RANK, S.ITEM_ID, S.SCORE,
        F.lit(None).cast("double").alias(S.ALS_SCORE),
        F.lit(None).cast("double").alias(S.CONTENT_SCORE),
        F.lit(None).cast("string").alias(S.REASON_ITEM_ID),
        F.lit(POPULARITY_STRATEGY).alias(S.STRATEGY),
    )


def with_run_columns(scored_df: DataFrame, *, model_version: str, run_id: str, ds: date) -> DataFrame:
    """Rows in the `recommendations` contract."""
    return scored_df.select(
        *[F.col(f.name) for f in SCORED_SCHEMA.fields],
        F.lit(model_version).alias(S.MODEL_VERSION), F.lit(run_id).alias(S.RUN_ID), F.lit(ds).alias(S.DS),
    )
