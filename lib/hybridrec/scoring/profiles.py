"""What a user's history says, shared by the blend kernel and the ranker's candidates: the most
recent positive items, the content profile and the recent-item query (pure numpy)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hybridrec.scoring.index import ItemIndex
from hybridrec.scoring.params import ScoringParams


@dataclass(frozen=True)
class History:
    """One user's interacted items: positions in the ItemIndex, summed weights, last event (epoch s)."""
    pos: np.ndarray
    weight: np.ndarray
    ts: np.ndarray
    blocked: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # positions on the user's own block list (rules)
    text: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # embedding of the user's own words (or empty)


def user_factor_matrix(factors: list, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_users x rank float32 factors, has-factors mask): users without ALS factors get zero rows."""
    has = np.array([f is not None and len(f) > 0 for f in factors], dtype=bool)
    matrix = np.zeros((len(factors), rank), dtype=np.float32)
    if has.any():
        matrix[has] = np.stack([f for f in factors if f is not None and len(f) > 0])
    return matrix, has


def positives(hist: History, index: ItemIndex, p: ScoringParams, limit: int, mask: np.ndarray):
    """The user's most recent positive history items (newest first) that have `mask`."""
    keep = (hist.weight >= p.positive_min_weight) & mask[hist.pos]
    pos, weight, ts = hist.pos[keep], hist.weight[keep], hist.ts[keep]
    recent = np.argsort(-ts, kind="stable")[:limit]
    return pos[recent], weight[recent], ts[recent]


def _unit(vec: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vec)
    return vec / norm if norm > 0 else vec


def profiles_of(histories: list[History], index: ItemIndex, p: ScoringParams) -> tuple[np.ndarray, list[np.ndarray]]:
    """Content profile per user (recency-weighted mean of centred embeddings) and its source items.
    A user's own words (History.text), centred like the items, count as p.text_prior_items history
    items: the whole profile of a user without history, a fading prior as history grows."""
    profiles = np.zeros((len(histories), index.content.shape[1]), dtype=np.float32)
    sources: list[np.ndarray] = []
    for row, hist in enumerate(histories):
        pos, weight, ts = positives(hist, index, p, p.profile_max_items, index.has_embedding)
        sources.append(pos)
        profile = np.zeros(profiles.shape[1], dtype=np.float32)
        if len(pos):
            age_days = np.maximum(0.0, (p.as_of_epoch_s - ts) / 86400.0)
            w = weight * np.power(0.5, age_days / p.recency_half_life_days)
            profile = _unit((w[:, None] * index.content[pos]).sum(axis=0))
        if len(hist.text) and p.text_prior_items > 0 and index.content_mean is not None:
            text = _unit(hist.text - index.content_mean)
            profile = _unit((len(pos) * profile + p.text_prior_items * text) / (len(pos) + p.text_prior_items))
        profiles[row] = profile
    return profiles, sources


def words_as_factors(user_factors: np.ndarray, has: np.ndarray, profiles: np.ndarray, histories: list[History],
                     index: ItemIndex, p: ScoringParams) -> tuple[np.ndarray, np.ndarray]:
    """Users with words of their own but no ALS factors (newcomers) get a collaborative signal from
    their words: the mean ALS factors of the p.text_user_neighbours users with history whose own words
    are closest (people who describe themselves alike like alike), or, while fewer users than that
    wrote (the nearest of a handful may be about something else), of the p.text_neighbours warm items
    closest to their content profile."""
    wrote = np.array([len(h.text) > 0 for h in histories], dtype=bool)
    needs = ~has & wrote & profiles.any(axis=1)
    writers = 0 if index.writer_factors is None else len(index.writer_factors)
    if needs.any() and 0 < p.text_user_neighbours <= writers:
        k = p.text_user_neighbours
        words = np.stack([histories[i].text for i in np.flatnonzero(needs)]).astype(np.float32)
        nearest = np.argpartition(-(words @ index.writer_text.T), k - 1, axis=1)[:, :k]
        out, present = user_factors.copy(), has.copy()
        out[needs], present[needs] = index.writer_factors[nearest].mean(axis=1), True
        return out, present
    warm = np.flatnonzero(index.has_factors & index.has_embedding)
    if not needs.any() or p.text_neighbours == 0 or len(warm) == 0:
        return user_factors, has
    k = min(p.text_neighbours, len(warm))
    nearest = np.argpartition(-(profiles[needs] @ index.content[warm].T), k - 1, axis=1)[:, :k]
    out, present = user_factors.copy(), has.copy()
    out[needs] = index.factors[warm[nearest]].mean(axis=1)
    present[needs] = True
    return out, present


def recent_queries(histories: list[History], index: ItemIndex, p: ScoringParams) -> tuple[np.ndarray, np.ndarray]:
    """Mean unit ALS factor of each user's recent positive items (its dot with a unit item factor is
    the mean cosine to them), and whether the user has any."""
    out = np.zeros((len(histories), index.factors.shape[1]), dtype=np.float32)
    present = np.zeros(len(histories), dtype=bool)
    for row, hist in enumerate(histories):
        pos, _, _ = positives(hist, index, p, p.recent_items, index.has_factors)
        if len(pos):
            out[row], present[row] = index.factors_unit[pos].mean(axis=0), True
    return out, present
