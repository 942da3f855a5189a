"""The hybrid top-N kernel: pure numpy over one block of users (the Spark side is scoring.arrow;
each list is finished, rules and MMR, and turned into rows by scoring.rows).

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
tuning compare strategies on the same factors. Each row also names the signal that did most to rank
it (its explanation is written from that in Spark).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hybridrec import schema as S
from hybridrec.scoring import retrieval
from hybridrec.scoring.candidates import FEATURES, SOURCES, candidates
from hybridrec.scoring.index import ItemIndex, Moments
from hybridrec.scoring.params import Blend, ScoringParams
from hybridrec.scoring.profiles import History, profiles_of, recent_queries, user_factor_matrix, words_as_factors
from hybridrec.scoring.ranker import ranked_lists
from hybridrec.scoring.rows import ROW_DTYPES, ScoredRows, UserSide, assemble, finished
from hybridrec.scoring.rules import RULES


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


def score_block(
    user_ids: list[str], factors: list, histories: list[History], index: ItemIndex, p: ScoringParams
) -> pd.DataFrame:
    """Top-N rows (schema.SCORED_SCHEMA) for one block of users, one list per blend in `p.blends`."""
    r = score_rows(factors, histories, index, p)
    reasons = index.item_ids[np.maximum(r.reason, 0)].astype(object)
    reasons[r.reason < 0] = None
    return pd.DataFrame({
        S.USER_ID: np.asarray(user_ids, dtype=object)[r.rows], S.RANK: r.rank, S.ITEM_ID: index.item_ids[r.items],
        S.SCORE: r.score, S.ALS_SCORE: _nullable(r.als), S.CONTENT_SCORE: _nullable(r.content),
        S.REASON_ITEM_ID: reasons, S.STRATEGY: np.asarray(r.names, dtype=object)[r.strategy],
        S.SIGNAL: np.asarray((None, *SOURCES), dtype=object)[r.signal],
        S.REMOVED_BY: np.asarray((None, *RULES), dtype=object)[r.removed_by],
    })


def score_rows(factors: list, histories: list[History], index: ItemIndex, p: ScoringParams) -> ScoredRows:
    """score_block's rows, before user and item ids are attached."""
    n_users = len(histories)
    spaces = _spaces(index)
    user_factors, has_user_factors = user_factor_matrix(factors, index.factors.shape[1])
    profiles, profile_sources = profiles_of(histories, index, p)
    user_factors, has_user_factors = words_as_factors(user_factors, has_user_factors, profiles, histories, index, p)
    no_profile = ~profiles.any(axis=1)  # no positive history and no words of their own
    seen = (np.repeat(np.arange(n_users), [len(h.pos) for h in histories]),
            np.concatenate([h.pos for h in histories]) if histories else np.zeros(0, np.int64))
    blends = [b for _, b in p.blends]
    queries = {"als": (user_factors, has_user_factors), "content": (profiles, ~no_profile),
               "popularity": (np.ones((n_users, 1), np.float32), np.ones(n_users, bool)),
               "mapped": (user_factors, has_user_factors)}
    if any(b.recent > 0 for b in blends):
        queries["recent"] = recent_queries(histories, index, p)

    new_space = spaces["new"]
    new_top = new_scores = None
    max_slots = max([b.new_item_slots for b in blends if b.uses_interactions and not b.ranked] or [0])
    extra = p.rules.extra_candidates if p.rules is not None else 0
    if max_slots and len(new_space.cols):
        # New items are few (a few % of the catalogue): scoring them all costs less than any index.
        new_score = _blend_scores(new_space, queries, {"mapped": p.new_item_mapped_weight,
                                                       "content": 1.0 - p.new_item_mapped_weight}, seen)
        new_top, new_scores = _ranked(new_space, new_score, max_slots + extra)

    names = (*[name for name, _ in p.blends], S.NEW_ITEM)
    user = UserSide(user_factors, has_user_factors, profiles, no_profile, profile_sources, histories)
    parts = []
    for code, (_, blend) in enumerate(p.blends):
        if blend.ranked:
            parts.append(_ranked_part(factors, histories, index, p, blend, code, names))
            continue
        weights = {"als": blend.als, "recent": blend.recent, "popularity": blend.popularity, "content": blend.content}
        # A content-only blend ranks every item with an embedding; otherwise new items only get slots.
        space = spaces["warm"] if blend.uses_interactions else spaces["embedded"]
        pool_top, pool_scores = _ranked_blend(space, queries, weights, seen, p, p.pool(blend))
        main = finished(pool_top, pool_scores, p.top_n, p, histories, index, blend.diversity)
        slots = min(blend.new_item_slots, max_slots) if (new_top is not None and blend.uses_interactions) else 0
        new = finished(new_top[:, :slots + extra] if slots else np.zeros((n_users, 0), np.int64),
                        new_scores[:, :slots + extra] if slots else np.zeros((n_users, 0)), slots, p, histories,
                        index, 0.0)
        new_keep = new.order >= 0
        # Kept columns come first in each finished list, so "keep" is a prefix of every row.
        room = p.top_n - new_keep.sum(axis=1, keepdims=True)
        main_keep = (main.order >= 0) & (np.cumsum(main.order >= 0, axis=1) <= room)
        keep = np.concatenate([main_keep, new_keep], axis=1)
        rows = np.broadcast_to(np.arange(n_users)[:, None], keep.shape)[keep]
        is_new = np.concatenate([np.zeros_like(main_keep), new_keep], axis=1)[keep]
        removed = [main.removed_rows(code), new.removed_rows(len(names) - 1 if p.mark_new_items else code)]
        items = np.concatenate([main.items, new.items], axis=1)[keep]
        parts.append(assemble(
            user, index, p, names, rows=rows, rank=np.cumsum(keep, axis=1)[keep].astype(np.int32), items=items,
            score=np.concatenate([main.scores, new.scores], axis=1)[keep],
            strategy=np.where(is_new & p.mark_new_items, len(names) - 1, code), removed=removed,
            signal=_blend_signals(space, queries, weights, rows, items) if p.explain else None))
    return ScoredRows(**{f: np.concatenate([getattr(r, f) for r in parts]) if parts else np.zeros(0, t)
                         for f, t in ROW_DTYPES.items()}, names=names)


def _ranked_part(factors: list, histories: list[History], index: ItemIndex, p: ScoringParams, blend: Blend,
                 code: int, names: tuple[str, ...]) -> ScoredRows:
    """One block's rows of the learned ranker: candidates, their features, LightGBM scores, lists."""
    if p.ranker is None:
        raise ValueError(f"blend {names[code]!r} is ranked but no ranker model was given")
    c = candidates(factors, histories, index, p)
    scores = p.ranker.predict(c.features) if len(c.rows) else np.zeros(0)
    at, rank = ranked_lists(c.rows, scores, c.is_new, top_n=p.top_n, new_item_slots=blend.new_item_slots,
                            new_item_bar=p.ranker.new_item_bar, list_length=p.pool(blend))
    # Lists as a (users, pool) matrix of candidate indices, best first; -1 past a list's end.
    dense = np.full((len(histories), int(rank.max(initial=0))), -1, dtype=np.int64)
    dense[c.rows[at], rank - 1] = at
    dense_scores = np.where(dense >= 0, scores[dense], -np.inf)
    # Rules and MMR see item positions; the rows are then taken back as candidate indices.
    done = finished(c.items[dense], dense_scores, p.top_n, p, histories, index, blend.diversity)
    kept = done.order >= 0
    at = np.take_along_axis(dense, np.maximum(done.order, 0), axis=1)[kept]

    def strategy(at: np.ndarray) -> np.ndarray:
        return np.where(c.is_new[at] & p.mark_new_items, len(names) - 1, code)

    rows_r, cols_r = np.nonzero(done.removed)
    at_r, removed_by = dense[rows_r, cols_r], done.removed[rows_r, cols_r]
    scores_r = scores[at_r]
    user = UserSide(c.user_factors, c.has_user_factors, c.profiles, c.no_profile, c.profile_sources, histories)
    # The row's strongest source: its highest per-user z-score (missing = the source cannot score it).
    z = np.nan_to_num(c.features[at][:, [FEATURES.index(f"{s}_z") for s in SOURCES]], nan=-np.inf)
    signal = np.where(np.isfinite(z).any(axis=1), np.argmax(z, axis=1) + 1, 0).astype(np.int8) if len(at) else None
    return assemble(user, index, p, names, rows=c.rows[at], rank=np.cumsum(kept, axis=1)[kept].astype(np.int32),
                     items=c.items[at], score=scores[at], strategy=strategy(at),
                     removed=[(rows_r, c.items[at_r], scores_r, strategy(at_r), removed_by)], signal=signal)


def _blend_signals(space: _Space, queries: dict[str, tuple[np.ndarray, np.ndarray]], weights: dict[str, float],
                   rows: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Per listed row, 1 + the SOURCES index of the signal whose weighted z-score adds most to its
    blended score (0: none), from the same per-user moments the blend uses."""
    best, code = np.full(len(rows), -np.inf), np.zeros(len(rows), np.int8)
    for s, w in weights.items():
        if w <= 0:
            continue
        a, present = queries[s]
        a, m = a.astype(np.float64), space.moments[s]
        std = np.sqrt(np.maximum(((a @ m.cov) * a).sum(axis=1), 0.0)).clip(min=1e-6)
        z = (np.einsum("ij,ij->i", a[rows], space.items[s][items]) - (a @ m.mean)[rows]) / std[rows]
        part = np.where(present[rows], w * z, -np.inf)
        better = part > best
        best, code = np.where(better, part, best), np.where(better, SOURCES.index(s) + 1, code).astype(np.int8)
    return code


def _nullable(values: np.ndarray) -> pd.Series:
    return pd.Series(np.where(np.isfinite(values), values, np.nan), dtype="float64")
