"""The ranker's first stage, pure numpy over one block of users: candidates from several sources
and one feature row per (user, candidate).

Sources, each its best `per_source` unseen items per user: ALS (U·Vᵀ), recent-item neighbours
(cosine in ALS space to the user's last positives), co-occurrence neighbours (sum of the user's
positive items' neighbour similarities, transforms.cooccurrence), content (embedding cosine to the
profile, new items included), popularity, and new items (what ALS would say through the
embedding -> factor map, plus content). Their union is what the ranker scores.

Features are each signal's raw value, its per-user z-score over the items it covers and the
candidate's rank in that source (NaN when the source did not propose it), plus item age and
popularity, user activity, whether the item is new and how many sources proposed it. A signal an
item cannot have (ALS for an item without interactions) is NaN, which LightGBM treats as missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from hybridrec.scoring.index import ItemIndex
from hybridrec.scoring.params import ScoringParams
from hybridrec.scoring.profiles import History, profiles_of, recent_queries, user_factor_matrix, words_as_factors

SOURCES = ("als", "recent", "cooc", "content", "popularity")
FEATURES = (*[f"{s}{suffix}" for s in SOURCES for suffix in ("", "_z", "_rank")], "mapped", "mapped_rank",
            "item_age_days", "is_new", "n_sources", "user_items", "user_positives", "user_days_idle")
# Dense (users x items) float32 matrices alive at once per block: the scoring block is sized by it.
MATRICES_PER_BLOCK = 24


@dataclass(frozen=True)
class Candidates:
    rows: np.ndarray          # int64 block row of the user
    items: np.ndarray         # int64 ItemIndex position
    features: np.ndarray      # (n, len(FEATURES)) float32, NaN = missing
    is_new: np.ndarray        # bool: the item has no interactions (no ALS factors)
    profiles: np.ndarray      # (users, dim) content profiles (reasons and content_score)
    no_profile: np.ndarray    # (users,) bool
    profile_sources: list[np.ndarray]
    user_factors: np.ndarray
    has_user_factors: np.ndarray


def _top_mask(score: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k best finite columns: (mask, rank 1..k as float32, NaN outside)."""
    n = score.shape[1]
    mask = np.zeros(score.shape, dtype=bool)
    rank = np.full(score.shape, np.nan, dtype=np.float32)
    k = min(k, n)
    if k <= 0:
        return mask, rank
    top = np.argpartition(-score, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (len(score), 1))
    order = np.argsort(-np.take_along_axis(score, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    rows = np.repeat(np.arange(len(score)), k)
    finite = np.isfinite(score[rows, top.ravel()])
    mask[rows[finite], top.ravel()[finite]] = True
    rank[rows[finite], top.ravel()[finite]] = np.tile(np.arange(1, k + 1, dtype=np.float32), len(score))[finite]
    return mask, rank


def _zscore(values: np.ndarray, over: np.ndarray) -> np.ndarray:
    """Per row, (x - mean) / std over the columns in `over`."""
    if not over.any():
        return np.full(values.shape, np.nan, dtype=np.float32)
    sub = values[:, over]
    mean = sub.mean(axis=1, keepdims=True)
    std = sub.std(axis=1, keepdims=True).clip(min=1e-6)
    return ((values - mean) / std).astype(np.float32)


def _history_matrix(histories: list[History], index: ItemIndex) -> sparse.csr_matrix:
    """(users, items) 1 for each item the user interacted with (the item-item neighbours' query,
    binary as EASE is trained)."""
    rows, cols = [], []
    for row, hist in enumerate(histories):
        rows.append(np.full(len(hist.pos), row))
        cols.append(hist.pos)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    n = len(index.item_ids)
    return sparse.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(histories), n))


def _dense(m) -> np.ndarray:
    return m.toarray() if sparse.issparse(m) else np.asarray(m)


def candidates(factors: list, histories: list[History], index: ItemIndex, p: ScoringParams) -> Candidates:
    n_users, n_items = len(histories), len(index.item_ids)
    user_factors, has_user = user_factor_matrix(factors, index.factors.shape[1])
    profiles, profile_sources = profiles_of(histories, index, p)
    user_factors, has_user = words_as_factors(user_factors, has_user, profiles, histories, index, p)
    no_profile = ~profiles.any(axis=1)  # no positive history and no words of their own
    recent_q, has_recent = recent_queries(histories, index, p)
    warm, embedded = index.has_factors, index.has_embedding
    new = embedded & ~warm

    seen = np.zeros((n_users, n_items), dtype=bool)
    for row, hist in enumerate(histories):
        seen[row, hist.pos] = True

    def signal(values: np.ndarray, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        out = values.astype(np.float32, copy=False)
        out[~users] = np.nan
        out[:, ~items] = np.nan
        return out

    raw = {
        "als": signal(user_factors @ index.factors.T, has_user, warm),
        "recent": signal(recent_q @ index.factors_unit.T, has_recent, warm),
        "cooc": signal(_dense(_history_matrix(histories, index) @ index.neighbours), np.ones(n_users, bool), warm),
        "content": signal(profiles @ index.content.T, ~no_profile, embedded),
        "popularity": signal(np.broadcast_to(np.log1p(index.popularity), (n_users, n_items)).copy(),
                             np.ones(n_users, bool), warm),
    }
    mapped = signal(user_factors @ index.mapped_factors.T, has_user, embedded)
    covered = {"als": warm, "recent": warm, "cooc": warm, "content": embedded, "popularity": warm}
    union = np.zeros((n_users, n_items), dtype=bool)
    columns: dict[str, np.ndarray] = {}
    n_sources = np.zeros((n_users, n_items), dtype=np.int8)
    for s in SOURCES:
        proposal = np.where(seen | np.isnan(raw[s]), -np.inf, raw[s])
        if s == "cooc":
            proposal[proposal <= 0] = -np.inf  # no neighbour in common: not a co-occurrence candidate
        mask, rank = _top_mask(proposal, p.candidates_per_source)
        union |= mask
        n_sources += mask
        columns[s], columns[f"{s}_z"], columns[f"{s}_rank"] = raw[s], _zscore(np.nan_to_num(raw[s]), covered[s]), rank
    # New items: their own source (they are few, and no collaborative source can propose them).
    new_score = np.nan_to_num(_zscore(np.nan_to_num(mapped), new)) + np.nan_to_num(columns["content_z"])
    new_mask, new_rank = _top_mask(np.where(seen | ~new[None, :], -np.inf, new_score), p.new_item_candidates)
    union |= new_mask
    n_sources += new_mask
    columns["mapped"], columns["mapped_rank"] = mapped, new_rank

    rows, items = np.nonzero(union)
    age = (p.as_of_epoch_s - index.first_event_s) / 86400.0
    user_items = np.array([len(h.pos) for h in histories], dtype=np.float32)
    user_pos = np.array([(h.weight >= p.positive_min_weight).sum() for h in histories], dtype=np.float32)
    idle = np.array([(p.as_of_epoch_s - h.ts.max()) / 86400.0 if len(h.ts) else np.nan for h in histories],
                    dtype=np.float32)
    per_pair = {**{name: m[rows, items] for name, m in columns.items()},
                "item_age_days": age[items], "is_new": new[items].astype(np.float32),
                "n_sources": n_sources[rows, items], "user_items": user_items[rows],
                "user_positives": user_pos[rows], "user_days_idle": idle[rows]}
    for s in SOURCES:  # a z-score of a signal the item cannot have is missing, not zero
        per_pair[f"{s}_z"] = np.where(np.isnan(per_pair[s]), np.nan, per_pair[f"{s}_z"])
    features = np.column_stack([np.asarray(per_pair[f], dtype=np.float32) for f in FEATURES])
    return Candidates(rows.astype(np.int64), items.astype(np.int64), features, new[items], profiles, no_profile,
                      profile_sources, user_factors, has_user)
