"""Block scoring on hand-made matrices with known answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from hybridrec import schema as S
from hybridrec.scoring.index import build_item_index, popularity_top_n
from hybridrec.scoring.kernel import score_block
from hybridrec.scoring.params import Blend
from scoring_data import A_FAN, ALS_ONLY, CONTENT_ONLY, HYBRID, INDEX, RECENT_ONLY, hist, params

NEW_ITEM_STRATEGY, POPULARITY = S.NEW_ITEM, S.POPULARITY



def test_new_item_slot_goes_to_the_new_item_of_the_users_topic_and_seen_items_never_return():
    out = score_block(["u"], [A_FAN], [hist([0, 1])], INDEX, params())
    assert out[S.RANK].tolist() == [1, 2, 3]
    assert set(out[S.ITEM_ID].tolist()[:2]) == {"b0", "b1"}  # the only unseen items with interactions
    last = out.iloc[-1]
    assert (last[S.ITEM_ID], last[S.STRATEGY]) == ("a2_new", NEW_ITEM_STRATEGY)
    assert pd.isna(last[S.ALS_SCORE]) and last[S.CONTENT_SCORE] > 0
    assert last[S.REASON_ITEM_ID] == "a0"  # the history item closest to it in embedding space
    assert not {"a0", "a1"} & set(out[S.ITEM_ID])


def test_without_slots_new_items_are_left_out_of_an_interaction_based_blend():
    blend = Blend(als=0.5, recent=0.0, popularity=0.0, content=0.5, new_item_slots=0)
    out = score_block(["u"], [A_FAN], [hist([0])], INDEX, params(("hybrid", blend), top_n=6))
    assert out[S.ITEM_ID].tolist()[0] == "a1"
    assert set(out[S.ITEM_ID]) == {"a1", "b0", "b1"}  # top_n=6, but the new items get no place


def test_content_only_ranks_every_item_with_an_embedding():
    out = score_block(["u"], [A_FAN], [hist([0, 1])], INDEX, params(("content", CONTENT_ONLY), top_n=1))
    assert out[S.ITEM_ID].tolist() == ["a2_new"]
    assert out[S.STRATEGY].tolist() == ["content"]


def test_user_without_positive_items_has_no_content_score():
    out = score_block(["u"], [np.array([0.0, 1.0])], [hist([0], weight=[0.5])], INDEX,
                      params(("als", ALS_ONLY), top_n=2))
    assert out[S.ITEM_ID].tolist() == ["b0", "b1"]
    assert out[S.CONTENT_SCORE].isna().all()


def test_recent_signal_follows_the_last_positive_item_not_the_long_term_taste():
    # Long-term factors say topic A; the newest positive item is b0.
    h = hist([0, 3], ts=[100_000.0, 999_000.0])
    recent = score_block(["u"], [A_FAN], [h], INDEX, params(("recent", RECENT_ONLY), top_n=1))
    als = score_block(["u"], [A_FAN], [h], INDEX, params(("als", ALS_ONLY), top_n=1))
    assert recent[S.ITEM_ID].tolist() == ["b1"]
    assert als[S.ITEM_ID].tolist() == ["a1"]


def test_recent_history_dominates_the_content_profile():
    h = hist([0, 3], ts=[0.0, 999_000.0])
    out = score_block(["u"], [None], [h], INDEX, params(("content", CONTENT_ONLY), top_n=1,
                                                         recency_half_life_days=1.0))
    assert out[S.ITEM_ID].tolist() == ["b2_new"]  # closest to the recent b0; a2_new would win if age were ignored


def test_one_pass_scores_several_blends_under_their_names():
    out = score_block(["u"], [A_FAN], [hist([0])], INDEX,
                      params(("als", ALS_ONLY), ("hybrid", HYBRID), top_n=3, mark_new_items=False))
    assert out.groupby(S.STRATEGY).size().to_dict() == {"als": 3, "hybrid": 3}
    assert "a2_new" in set(out[out[S.STRATEGY] == "hybrid"][S.ITEM_ID])
    assert not {"a2_new", "b2_new"} & set(out[out[S.STRATEGY] == "als"][S.ITEM_ID])


def test_block_of_users_keeps_users_apart():
    out = score_block(["ua", "ub"], [A_FAN, np.array([0.0, 1.0])], [hist([0, 1]), hist([3, 4])], INDEX,
                      params(("content", CONTENT_ONLY), top_n=1))
    assert dict(zip(out[S.USER_ID], out[S.ITEM_ID], strict=True)) == {"ua": "a2_new", "ub": "b2_new"}


def test_embedding_regression_maps_new_items_near_their_topic_in_factor_space():
    a_new, b_new = INDEX.mapped_factors[2], INDEX.mapped_factors[5]
    assert a_new @ A_FAN > a_new @ np.array([0.0, 1.0])
    assert b_new @ np.array([0.0, 1.0]) > b_new @ A_FAN


def test_popularity_list_is_sorted_and_normalised():
    top = popularity_top_n(INDEX, 3)
    assert top[S.ITEM_ID].tolist() == ["a0", "a1", "b0"]
    assert top[S.SCORE].tolist() == pytest.approx([1.0, 0.8, 0.6])


def _explicit_blend(users: np.ndarray, recent: np.ndarray, profiles: np.ndarray, index, weights: dict) -> np.ndarray:
    """The blend as its definition reads: full (users x items) signals, z-scored per user over the
    items with factors, weighted mean; the reference for the one-matrix-product form."""
    warm = index.has_factors
    signals = {"als": users @ index.factors.T, "recent": recent @ index.factors_unit.T,
               "content": profiles @ index.content.T,
               "popularity": np.broadcast_to(np.log1p(index.popularity), (len(users), len(warm)))}
    total = sum(weights.values())
    out = np.zeros((len(users), len(warm)))
    for name, w in weights.items():
        x = signals[name].astype(np.float64)[:, warm]
        out[:, warm] += w * (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True) / total
    out[:, ~warm] = -np.inf
    return out


def test_one_product_blend_equals_the_explicit_per_user_z_scored_blend():
    rng = np.random.default_rng(3)
    n, rank, dim = 60, 4, 6
    has_factors = rng.random(n) > 0.2
    index = build_item_index(pd.DataFrame({
        S.ITEM_ID: [f"i{i:02d}" for i in range(n)],
        S.FEATURES: [rng.normal(size=rank) if f else None for f in has_factors],
        S.EMBEDDING: list(rng.normal(size=(n, dim))), POPULARITY: rng.pareto(1.5, n)}))
    users = rng.normal(size=(5, rank)).astype(np.float32)
    histories = [hist(rng.choice(np.flatnonzero(has_factors), 4, replace=False), ts=[1.0, 2.0, 3.0, 4.0])
                 for _ in users]
    weights = {"als": 0.2, "recent": 0.4, "popularity": 0.1, "content": 0.3}
    p = params(("hybrid", Blend(**weights, new_item_slots=0)), top_n=10, recent_items=2, explain=False)
    out = score_block([f"u{u}" for u in range(5)], list(users), histories, index, p)

    recent = np.stack([index.factors_unit[h.pos[2:]].mean(axis=0) for h in histories])  # the 2 newest
    profiles = np.stack([_profile(h, index, p) for h in histories])
    expected = _explicit_blend(users, recent, profiles, index, weights)
    for u, h in enumerate(histories):
        expected[u, h.pos] = -np.inf  # seen
        got = out[out[S.USER_ID] == f"u{u}"]
        top = np.argsort(-expected[u], kind="stable")[:10]
        assert got[S.ITEM_ID].tolist() == index.item_ids[top].tolist()
        assert got[S.SCORE].to_numpy() == pytest.approx(expected[u, top], abs=1e-4)


def _profile(h, index, p) -> np.ndarray:
    age_days = (p.as_of_epoch_s - h.ts) / 86400.0
    vec = ((h.weight * 0.5 ** (age_days / p.recency_half_life_days))[:, None] * index.content[h.pos]).sum(axis=0)
    return vec / np.linalg.norm(vec)


def _random_block(seed: int, n_items: int = 400, n_users: int = 30):
    rng = np.random.default_rng(seed)
    index = build_item_index(pd.DataFrame({
        S.ITEM_ID: [f"i{i:03d}" for i in range(n_items)], S.FEATURES: list(rng.normal(size=(n_items, 4))),
        S.EMBEDDING: list(rng.normal(size=(n_items, 6))), POPULARITY: rng.pareto(1.5, n_items)}))
    histories = [hist(rng.choice(n_items, rng.integers(1, 60), replace=False)) for _ in range(n_users)]
    return [f"u{u:02d}" for u in range(n_users)], list(rng.normal(size=(n_users, 4))), histories, index


def _exact_and(seed: int, blend: Blend, **retrieval):
    """Exact and approximate lists (`retrieval` settings) for one random block."""
    users, factors, histories, index = _random_block(seed)
    exact = score_block(users, factors, histories, index, params(("h", blend), top_n=10, explain=False))
    approx = score_block(users, factors, histories, index, params(("h", blend), top_n=10, explain=False, **retrieval))
    return users, histories, index, exact, approx


def _exact_and_ivf(seed: int, blend: Blend, probes: int, candidates: int):
    """Exact and IVF lists (a 6-d first pass, 20 items per list, `probes` lists searched) for one random block."""
    return _exact_and(seed, blend, retrieval="ivf", rerank_dims=6, rerank_candidates=candidates,
                      ivf_list_size=20, ivf_probes=probes)


def _approximate_lists_recall(users, histories, index, exact: pd.DataFrame, approx: pd.DataFrame) -> float:
    """Checks that every approximate list is full, unseen, best first and exactly scored; returns the
    mean share of each exact top 10 it holds."""
    assert approx.groupby(S.USER_ID).size().tolist() == [10] * len(users)
    recall = []
    for user, h in zip(users, histories, strict=True):
        got, want = approx[approx[S.USER_ID] == user], exact[exact[S.USER_ID] == user]
        assert not set(got[S.ITEM_ID]) & set(index.item_ids[h.pos])
        assert got[S.SCORE].is_monotonic_decreasing
        both = got.merge(want, on=S.ITEM_ID, suffixes=("", "_exact"))
        assert both[S.SCORE].to_numpy() == pytest.approx(both[f"{S.SCORE}_exact"].to_numpy(), abs=1e-4)
        recall.append(len(both) / 10)
    return float(np.mean(recall))


def test_rerank_with_every_item_a_candidate_gives_the_exact_lists_and_scores():
    blend = Blend(als=0.3, recent=0.3, popularity=0.1, content=0.3, new_item_slots=0)
    # A 2-d first pass of a 15-wide blend, then all 400 items re-scored exactly.
    _, _, _, exact, rerank = _exact_and(5, blend, retrieval="rerank", rerank_dims=2, rerank_candidates=400)
    assert rerank[S.ITEM_ID].tolist() == exact[S.ITEM_ID].tolist()
    assert rerank[S.SCORE].to_numpy() == pytest.approx(exact[S.SCORE].to_numpy(), abs=1e-4)


def test_rerank_lists_are_full_unseen_exactly_scored_and_mostly_the_exact_items():
    blend = Blend(als=0.3, recent=0.2, popularity=0.2, content=0.3, new_item_slots=0)
    users, histories, index, exact, rerank = _exact_and(6, blend, retrieval="rerank", rerank_dims=6,
                                                        rerank_candidates=40)
    # 6 of 15 dimensions, 40 of 400 items re-scored
    assert 0.7 < _approximate_lists_recall(users, histories, index, exact, rerank) < 1.0


def test_ivf_retrieval_searching_every_list_for_every_item_gives_the_exact_lists():
    blend = Blend(als=0.3, recent=0.3, popularity=0.1, content=0.3, new_item_slots=0)
    _, _, _, exact, ivf = _exact_and_ivf(5, blend, probes=10_000, candidates=400)
    assert ivf[S.ITEM_ID].tolist() == exact[S.ITEM_ID].tolist()
    assert ivf[S.SCORE].to_numpy() == pytest.approx(exact[S.SCORE].to_numpy(), abs=1e-4)


def test_ivf_retrieval_finds_most_exact_items_in_a_few_lists_and_scores_them_exactly():
    blend = Blend(als=0.3, recent=0.2, popularity=0.2, content=0.3, new_item_slots=0)
    users, histories, index, exact, ivf = _exact_and_ivf(6, blend, probes=6, candidates=60)
    # 6 of 20 lists searched, 60 of 400 items re-scored (test_retrieval checks the lists' recall).
    assert 0.8 < _approximate_lists_recall(users, histories, index, exact, ivf) < 1.0


def test_ivf_retrieval_falls_back_to_every_item_for_users_its_lists_cannot_fill():
    blend = Blend(als=0.5, recent=0.0, popularity=0.0, content=0.5, new_item_slots=0)
    # One list of about 20 items searched; users with up to 59 seen items need more than it holds.
    users, histories, index, _, ivf = _exact_and_ivf(7, blend, probes=1, candidates=10)
    assert ivf.groupby(S.USER_ID).size().tolist() == [10] * len(users)
    for user, h in zip(users, histories, strict=True):
        assert not set(ivf[ivf[S.USER_ID] == user][S.ITEM_ID]) & set(index.item_ids[h.pos])


# An A fan who has seen b1: unseen warm items by ALS are a0 (1.0), a1 (0.8), b0 (0.0); a0 and a1 are
# near copies in embedding space, b0 is the other topic.
def _diverse_lists(diversity: float, **kw) -> list[str]:
    blend = dataclasses.replace(ALS_ONLY, diversity=diversity)
    out = score_block(["u"], [A_FAN], [hist([4])], INDEX, params(("als", blend), top_n=2, **kw))
    assert out[S.RANK].tolist() == [1, 2]
    return out[S.ITEM_ID].tolist()


def test_mmr_gives_the_second_place_to_the_other_topic_and_lambda_zero_keeps_the_plain_list():
    assert _diverse_lists(0.0) == ["a0", "a1"]
    assert _diverse_lists(0.5) == ["a0", "b0"]  # a1 is relevant but nearly a copy of a0
    assert _diverse_lists(0.05) == ["a0", "a1"]  # a little diversity does not outweigh relevance here


def test_mmr_chooses_only_from_its_pool_of_best_scored_items():
    assert _diverse_lists(0.5, diversity_candidates=2) == ["a0", "a1"]  # b0 is third: outside a pool of 2


def test_each_row_names_the_signal_that_ranked_it():
    for name, blend in (("als", ALS_ONLY), ("content", CONTENT_ONLY), ("recent", RECENT_ONLY)):
        out = score_block(["u"], [A_FAN], [hist([0])], INDEX, params((name, blend), top_n=2))
        assert set(out[S.SIGNAL]) == {name}


def test_a_blended_row_names_the_signal_with_the_largest_weighted_z_score():
    rng = np.random.default_rng(5)
    n, rank = 50, 4
    index = build_item_index(pd.DataFrame({
        S.ITEM_ID: [f"i{i:02d}" for i in range(n)], S.FEATURES: list(rng.normal(size=(n, rank))),
        S.EMBEDDING: list(rng.normal(size=(n, 6))), POPULARITY: rng.pareto(1.5, n)}))
    users = rng.normal(size=(4, rank)).astype(np.float32)
    histories = [hist(rng.choice(n, 5, replace=False), ts=[1.0, 2.0, 3.0, 4.0, 5.0]) for _ in users]
    weights = {"als": 0.3, "recent": 0.0, "popularity": 0.3, "content": 0.4}
    p = params(("hybrid", Blend(**weights, new_item_slots=0)), top_n=10)
    out = score_block([f"u{u}" for u in range(4)], list(users), histories, index, p)
    profiles = np.stack([_profile(h, index, p) for h in histories])
    signals = {"als": users @ index.factors.T, "content": profiles @ index.content.T,
               "popularity": np.broadcast_to(np.log1p(index.popularity), (len(users), n))}
    z = {k: weights[k] * (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
         for k, x in signals.items()}
    names = list(z)
    for row in out.itertuples(index=False):
        u, i = int(row.user_id[1:]), int(row.item_id[1:])
        assert row.signal == names[int(np.argmax([z[k][u, i] for k in names]))]
