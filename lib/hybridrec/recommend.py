"""Hybrid top-N scoring, block-wise inside Python workers.

Item-side matrices (ALS factors, embeddings, popularity) are broadcast once; users arrive in
Arrow batches with their history and factors. For each block of users the worker computes
ALS scores (U·Vᵀ) and content scores (profile·Eᵀ, profile = recency-weighted mean embedding of
the user's recent positive items), z-normalises each per user, blends them with the configured
weights over the signals an item has (an item without ALS factors is ranked by content alone),
masks seen items and takes the top N with argpartition. This is a matmul per block, not a
cross join, and unlike `recommendForAllUsers` it excludes what the user has already seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from pyspark import Broadcast
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

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
    factors: np.ndarray           # (n, rank) float32
    has_factors: np.ndarray       # (n,) bool
    embeddings: np.ndarray        # (n, dim) float32, L2-normalised rows
    has_embedding: np.ndarray     # (n,) bool
    popularity: np.ndarray        # (n,) float32


@dataclass(frozen=True)
class History:
    """One user's interacted items: positions in the ItemIndex, summed weights, last event (epoch s)."""
    pos: np.ndarray
    weight: np.ndarray
    ts: np.ndarray


@dataclass(frozen=True)
class ScoringParams:
    top_n: int
    als_weight: float
    content_weight: float
    positive_min_weight: float
    profile_max_items: int
    recency_half_life_days: float
    block_bytes: int
    as_of_epoch_s: float          # end of the run date: recency is measured from here


def build_item_index(items_pdf: pd.DataFrame) -> ItemIndex:
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
    return ItemIndex(
        item_ids=items_pdf[S.ITEM_ID].to_numpy(str),
        factors=factors, has_factors=has_factors,
        embeddings=embeddings, has_embedding=has_embedding,
        popularity=items_pdf[POPULARITY].fillna(0.0).to_numpy(np.float32),
    )


def scoring_params(cfg_recommend: RecommendConfig, positive_min_weight: float, ds: date) -> ScoringParams:
    return ScoringParams(
        top_n=cfg_recommend.top_n, als_weight=cfg_recommend.als_weight,
        content_weight=cfg_recommend.content_weight, positive_min_weight=positive_min_weight,
        profile_max_items=cfg_recommend.profile_max_items,
        recency_half_life_days=cfg_recommend.recency_half_life_days,
        block_bytes=cfg_recommend.block_bytes, as_of_epoch_s=day_end(ds).timestamp(),
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


def _zscore(x: np.ndarray) -> np.ndarray:
    """Per-row z-score over finite entries; non-finite entries stay NaN."""
    finite = np.isfinite(x)
    count = finite.sum(axis=1, keepdims=True).clip(min=1)
    filled = np.where(finite, x, 0.0)
    mean = filled.sum(axis=1, keepdims=True) / count
    var = (np.where(finite, x - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / count
    return (x - mean) / np.sqrt(var).clip(min=1e-6)


def _profiles(histories: list[History], index: ItemIndex, p: ScoringParams) -> tuple[np.ndarray, list[np.ndarray]]:
    """Content profile per user and the history positions it was built from."""
    profiles = np.zeros((len(histories), index.embeddings.shape[1]), dtype=np.float32)
    sources: list[np.ndarray] = []
    for row, hist in enumerate(histories):
        pos, weight, ts = hist.pos, hist.weight, hist.ts
        keep = (weight >= p.positive_min_weight) & index.has_embedding[pos]
        pos, weight, ts = pos[keep], weight[keep], ts[keep]
        recent = np.argsort(-ts, kind="stable")[: p.profile_max_items]
        pos, weight, ts = pos[recent], weight[recent], ts[recent]
        sources.append(pos)
        if len(pos) == 0:
            continue
        age_days = np.maximum(0.0, (p.as_of_epoch_s - ts) / 86400.0)
        w = weight * np.power(0.5, age_days / p.recency_half_life_days)
        vec = (w[:, None] * index.embeddings[pos]).sum(axis=0)
        norm = np.linalg.norm(vec)
        if norm > 0:
            profiles[row] = vec / norm
    return profiles, sources


def score_block(
    user_ids: list[str], factors: list, histories: list[History], index: ItemIndex, p: ScoringParams
) -> pd.DataFrame:
    """Top-N rows (SCORED_SCHEMA) for one block of users."""
    n_users = len(user_ids)
    has_user_factors = np.array([f is not None and len(f) > 0 for f in factors])
    user_factors = np.zeros((n_users, index.factors.shape[1]), dtype=np.float32)
    if has_user_factors.any():
        user_factors[has_user_factors] = np.stack([f for f in factors if f is not None and len(f) > 0])
    als = user_factors @ index.factors.T
    als[:, ~index.has_factors] = np.nan
    als[~has_user_factors] = np.nan
    profiles, profile_sources = _profiles(histories, index, p)
    has_profile = np.array([len(s) > 0 for s in profile_sources])
    content = profiles @ index.embeddings.T
    content[:, ~index.has_embedding] = np.nan
    content[~has_profile] = np.nan

    z_als, z_content = _zscore(als), _zscore(content)
    w_als = np.where(np.isfinite(z_als), p.als_weight, 0.0)
    w_content = np.where(np.isfinite(z_content), p.content_weight, 0.0)
    total = w_als + w_content
    blended = (w_als * np.nan_to_num(z_als) + w_content * np.nan_to_num(z_content)) / np.where(total > 0, total, 1)
    score = np.where(total > 0, blended, -np.inf)
    for row, hist in enumerate(histories):
        score[row, hist.pos] = -np.inf  # never recommend what the user already interacted with

    k = min(p.top_n, score.shape[1])
    top = np.argpartition(-score, k - 1, axis=1)[:, :k] if k < score.shape[1] else np.tile(np.arange(k), (n_users, 1))
    top_scores = np.take_along_axis(score, top, axis=1)
    order = np.lexsort((top, -top_scores), axis=1)
    top = np.take_along_axis(top, order, axis=1)

    frames = []
    for row in range(n_users):
        items = top[row][np.isfinite(score[row, top[row]])]
        if len(items) == 0:
            continue
        reason_pool = profile_sources[row] if len(profile_sources[row]) else histories[row].pos
        reason_pool = reason_pool[index.has_embedding[reason_pool]]
        if len(reason_pool):
            sims = index.embeddings[items] @ index.embeddings[reason_pool].T
            reasons = index.item_ids[reason_pool[np.argmax(sims, axis=1)]].astype(object)
            reasons[~index.has_embedding[items]] = None
        else:
            reasons = np.full(len(items), None, dtype=object)
        frames.append(pd.DataFrame({
            S.USER_ID: user_ids[row],
            S.RANK: np.arange(1, len(items) + 1, dtype=np.int32),
            S.ITEM_ID: index.item_ids[items],
            S.SCORE: score[row, items].astype(np.float64),
            S.ALS_SCORE: _nullable(als[row, items]),
            S.CONTENT_SCORE: _nullable(content[row, items]),
            S.REASON_ITEM_ID: reasons,
            S.STRATEGY: HYBRID,
        }))
    if not frames:
        return pd.DataFrame({f.name: [] for f in SCORED_SCHEMA.fields})
    return pd.concat(frames, ignore_index=True)


def _nullable(values: np.ndarray) -> pd.Series:
    return pd.Series(np.where(np.isfinite(values), values, np.nan), dtype="float64")


def with_hybrid_recommendations(
    histories_df: DataFrame, index_bc: Broadcast, params: ScoringParams
) -> DataFrame:
    """Top-N hybrid rows (SCORED_SCHEMA) for every user in `histories_df`."""

    def score_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        index: ItemIndex = index_bc.value  # unpickled once per worker process
        n_items = max(1, len(index.item_ids))
        # A few (users x items) float matrices live at once: keep them inside block_bytes.
        block = max(1, params.block_bytes // (n_items * 4 * 6))
        for batch in batches:
            for start in range(0, len(batch), block):
                part = batch.iloc[start:start + block]
                histories = [
                    History(np.asarray(pos, np.int64), np.asarray(w, np.float64), np.asarray(ts, np.float64))
                    for pos, w, ts in zip(part[HIST_POS], part[HIST_WEIGHT], part[HIST_TS], strict=True)
                ]
                yield score_block(part[S.USER_ID].tolist(), part[S.FEATURES].tolist(), histories, index, params)

    return histories_df.mapInPandas(score_partition, SCORED_SCHEMA)


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
