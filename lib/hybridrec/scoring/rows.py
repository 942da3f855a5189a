"""A scored block's output rows as arrays (ScoredRows), and how a list is finished: the business
rules and MMR over its pool (scoring/rules.py), then the kept and removed rows with their signal
columns and reasons. Pure numpy; the kernel (scoring/kernel.py) fills it, the Arrow adapter ships it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridrec.scoring.index import ItemIndex
from hybridrec.scoring.params import ScoringParams
from hybridrec.scoring.profiles import History
from hybridrec.scoring.rules import finish_lists


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
    removed_by: np.ndarray  # int8: 0 = a published row, else the business rule (scoring.rules.RULES) that removed it
    signal: np.ndarray      # int8: 1 + the SOURCES index of the signal that did most to rank the row, 0 = none
    names: tuple[str, ...]


@dataclass(frozen=True)
class UserSide:
    factors: np.ndarray
    has_factors: np.ndarray
    profiles: np.ndarray
    no_profile: np.ndarray
    profile_sources: list[np.ndarray]
    histories: list[History]


@dataclass(frozen=True)
class Finished:
    """Lists after the rules and MMR: items/scores (users, <= top_n) in list order, -inf past a list's
    end; the rules' removals as pool matrices."""
    items: np.ndarray
    scores: np.ndarray
    order: np.ndarray
    pool_items: np.ndarray
    pool_scores: np.ndarray
    removed: np.ndarray

    def removed_rows(self, strategy: int) -> tuple[np.ndarray, ...]:
        """(rows, items, scores, strategy, removed_by) of the removed rows."""
        rows, cols = np.nonzero(self.removed)
        return (rows, self.pool_items[rows, cols], self.pool_scores[rows, cols], np.full(len(rows), strategy),
                self.removed[rows, cols])


def finished(pool_items: np.ndarray, pool_scores: np.ndarray, top_n: int, p: ScoringParams,
              histories: list[History], index: ItemIndex, diversity: float) -> Finished:
    order, removed = finish_lists(pool_items, pool_scores, top_n=top_n, rules=p.rules,
                                  user_blocked=[h.blocked for h in histories], content=index.content,
                                  diversity=diversity)
    at = np.maximum(order, 0)
    return Finished(np.take_along_axis(pool_items, at, axis=1),
                     np.where(order >= 0, np.take_along_axis(pool_scores, at, axis=1), -np.inf),
                     order, pool_items, pool_scores, removed)


def assemble(user: UserSide, index: ItemIndex, p: ScoringParams, names: tuple[str, ...], *, rows: np.ndarray,
              rank: np.ndarray, items: np.ndarray, score: np.ndarray, strategy: np.ndarray,
              removed: list[tuple[np.ndarray, ...]], signal: np.ndarray | None) -> ScoredRows:
    """Kept rows and the rules' removed rows (rank 0, removed_by set) with their signal columns."""
    n_kept = len(rows)
    signal = np.zeros(n_kept, np.int8) if signal is None else signal
    rows, items, score, strategy, removed_by = (
        np.concatenate([x, *[r[i] for r in removed]]) for i, x in
        enumerate((rows, items, score, strategy, np.zeros(n_kept, np.int8))))
    als = np.einsum("ij,ij->i", user.factors[rows], index.factors[items])
    reason = np.full(len(items), -1, dtype=np.int64)
    if p.explain:
        reason[:n_kept] = _block_reasons(rows[:n_kept], items[:n_kept], user.profile_sources, user.histories, index)
    return ScoredRows(
        rows=rows, rank=np.concatenate([rank, np.zeros(len(rows) - n_kept, np.int32)]), items=items,
        score=score.astype(np.float64),
        als=np.where(user.has_factors[rows] & index.has_factors[items], als, np.nan).astype(np.float64),
        content=_pair_content(user.profiles, user.no_profile, index, rows, items).astype(np.float64),
        reason=reason, strategy=strategy.astype(np.int64), removed_by=removed_by.astype(np.int8),
        signal=np.concatenate([signal, np.zeros(len(rows) - n_kept, np.int8)]).astype(np.int8), names=names)


ROW_DTYPES = {"rows": np.int64, "rank": np.int32, "items": np.int64, "score": np.float64, "als": np.float64,
               "content": np.float64, "reason": np.int64, "strategy": np.int64, "removed_by": np.int8,
               "signal": np.int8}


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
