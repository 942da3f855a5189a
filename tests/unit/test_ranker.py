"""The learned ranker's pure parts: candidates and features, the list rule with the new-item bar,
the bar itself, LightGBM learning a known signal, and EASE's neighbour matrix."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from hybridrec.scoring import ease
from hybridrec.scoring.candidates import FEATURES, candidates
from hybridrec.scoring.kernel import score_block
from hybridrec.scoring.params import Blend
from hybridrec.scoring.ranker import fit_ranker, margin_to_tail, new_item_bar, ranked_lists
from scoring_data import IDS, INDEX, hist, params

# Item-item neighbours of the six-item catalogue: a0 -> b1 strongly, a0 -> a1 weakly.
NEIGHBOURS = sparse.csr_matrix((np.array([0.9, 0.2], np.float32), ([0, 0], [4, 1])), shape=(6, 6))
RANKED = Blend(als=0, recent=0, popularity=0, content=0, new_item_slots=1, ranked=True)


def _feature(c, name: str, item: str) -> float:
    at = np.flatnonzero(c.items == IDS.index(item))
    assert len(at) == 1, f"{item} should be one candidate"
    return float(c.features[at[0], FEATURES.index(name)])


def test_candidates_are_unseen_items_with_their_signals():
    index = dataclasses.replace(INDEX, neighbours=NEIGHBOURS)
    p = params(candidates_per_source=10, new_item_candidates=5)
    user_factor = np.array([1.0, 0.0], np.float32)
    c = candidates([user_factor], [hist([0])], index, p)
    proposed = {IDS[i] for i in c.items}
    assert "a0" not in proposed  # seen
    assert {"a1", "b0", "b1", "a2_new", "b2_new"} == proposed
    assert c.features.shape == (len(c.items), len(FEATURES))
    assert set(np.asarray(IDS)[c.items[c.is_new]]) == {"a2_new", "b2_new"}
    # Raw signals are what the item-side vectors say: ALS dot product, summed neighbour weights.
    assert _feature(c, "als", "a1") == pytest.approx(0.8)
    assert _feature(c, "cooc", "b1") == pytest.approx(0.9)
    assert _feature(c, "cooc_rank", "b1") == 1.0 and _feature(c, "cooc_rank", "a1") == 2.0
    # An item without interactions has no collaborative signal (missing, not zero), but has content.
    assert np.isnan(_feature(c, "als", "a2_new")) and np.isnan(_feature(c, "cooc_z", "a2_new"))
    assert _feature(c, "content", "a2_new") > _feature(c, "content", "b2_new")
    assert _feature(c, "is_new", "a2_new") == 1.0 and _feature(c, "user_items", "a1") == 1.0


def test_ranked_lists_place_new_items_only_past_the_bar_and_rank_without_holes():
    rows = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    scores = np.array([0.9, 0.1, 0.5, 0.4, 0.3, 0.2, 0.8, 0.7])
    is_new = np.array([False, False, True, True, False, False, True, False])
    at, rank = ranked_lists(rows, scores, is_new, top_n=3, new_item_slots=1, new_item_bar=0.35)
    # Margins are to the user's 3rd warm score (user 0: 0.1) or last (user 1: 0.2). User 0: new items
    # 0.5 (margin 0.4) clears the bar, 0.4 (0.3) does not; two warm places: 0.9, 0.3. User 1: the new
    # item (0.8, margin 0.6) clears it; warm 0.7 and 0.2 fill the rest.
    assert at.tolist() == [0, 2, 4, 6, 7, 5]
    assert rank.tolist() == [1, 2, 3, 1, 2, 3]
    at, _ = ranked_lists(rows, scores, is_new, top_n=3, new_item_slots=1, new_item_bar=np.inf)
    assert not is_new[at].any()  # an unreachable bar places no new item, however high it scores
    at, _ = ranked_lists(rows, scores, is_new, top_n=3, new_item_slots=0, new_item_bar=-np.inf)
    assert not is_new[at].any()


def test_margins_are_to_the_users_last_warm_place():
    rows = np.array([0, 0, 0, 1, 1])
    scores = np.array([3.0, 1.0, 2.0, 5.0, 4.5])
    is_new = np.array([False, False, True, False, True])
    np.testing.assert_allclose(margin_to_tail(rows, scores, is_new, top_n=2), [2.0, 0.0, 1.0, 0.0, -0.5])


def test_new_item_bar_matches_the_hit_rate_of_the_end_of_the_lists():
    # One user, top_n 4: warm items at places 3-4 hit half the time; the last warm place scores 1.0.
    scores = np.array([4.0, 3.0, 2.0, 1.0, 0.9, 0.8, 0.7, 0.6])
    labels = np.array([1, 0, 1, 0, 1, 1, 0, 0])
    is_new = np.array([False, False, False, False, True, True, True, True])
    codes = np.zeros(8, np.int64)
    # New candidates by score: hit, hit, miss, miss -> precision 1, 1, 2/3, 1/2: the bar is the lowest
    # margin that keeps precision >= 0.5 and is itself a hit: 0.8 - 1.0.
    assert new_item_bar(scores, labels, is_new, codes, top_n=4) == pytest.approx(-0.2)
    assert new_item_bar(scores, np.array([1, 0, 1, 0, 0, 0, 0, 0]), is_new, codes, top_n=4) == np.inf


def test_fit_ranker_learns_the_signal_that_predicts_relevance_and_survives_a_broadcast():
    rng = np.random.default_rng(0)
    n_users, per_user = 200, 30
    codes = np.repeat(np.arange(n_users), per_user)
    x = rng.normal(size=(n_users * per_user, len(FEATURES))).astype(np.float32)
    signal = FEATURES.index("cooc_z")
    labels = (x[:, signal] + 0.3 * rng.normal(size=len(x)) > 1.2).astype(np.int32)
    model = fit_ranker(x, labels, codes, np.zeros(len(x), bool), top_n=10, k=5, trees=60, learning_rate=0.1,
                       leaves=7, seed=1, models=2)
    assert max(model.importances, key=model.importances.get) == "cooc_z"
    assert model.metrics["models"] == 2 and sum(model.importances.values()) == pytest.approx(1.0)
    fresh = rng.normal(size=(500, len(FEATURES))).astype(np.float32)
    scores = model.predict(fresh)
    best = np.argsort(-scores)[:50]  # the tenth it ranks first are the ones the signal says are relevant
    assert fresh[best, signal].mean() > 1.2 and pd.Series(scores).corr(pd.Series(fresh[:, signal]), "spearman") > 0.6
    copy = pickle.loads(pickle.dumps(model))  # what a Spark broadcast does
    np.testing.assert_allclose(copy.predict(fresh), scores)


def test_score_block_with_the_ranker_gives_every_user_a_ranked_list():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, len(FEATURES))).astype(np.float32)
    labels = (x[:, FEATURES.index("als_z")] > 0.5).astype(np.int32)
    model = fit_ranker(x, labels, np.repeat(np.arange(40), 10), np.zeros(400, bool), top_n=3, k=3, trees=20,
                       learning_rate=0.1, leaves=4, seed=1)
    model = dataclasses.replace(model, new_item_bar=-np.inf)  # any new item may take the one slot
    index = dataclasses.replace(INDEX, neighbours=NEIGHBOURS)
    p = params(("hybrid", RANKED), ranker=model, top_n=3, candidates_per_source=10, new_item_candidates=5)
    out = score_block(["u0", "u1"], [np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)],
                      [hist([0]), hist([3])], index, p)
    for user, rows in out.groupby("user_id"):
        assert rows["rank"].tolist() == [1, 2, 3]
        assert (rows["strategy"] == "new_item").sum() == 1  # one slot, filled: the bar is open
        assert not set(rows["item_id"]) & ({"a0"} if user == "u0" else {"b0"})  # never a seen item


def test_ease_neighbours_are_ease_weights_whole_or_their_largest():
    user_pos = np.array([0, 0, 1, 1, 1, 2, 2, 3])
    item_pos = np.array([0, 1, 0, 1, 2, 1, 2, 3])
    x = ease.interaction_matrix(user_pos, item_pos, 4, 4)
    full = ease.ease_weights(x, 0.5)
    dense = ease.ease_neighbours(user_pos, item_pos, 4, 4, 0.5, keep=2, dense_max_items=10)
    np.testing.assert_allclose(dense, full, rtol=1e-5, atol=1e-6)
    top = ease.ease_neighbours(user_pos, item_pos, 4, 4, 0.5, keep=2, dense_max_items=3)
    assert sparse.issparse(top) and (top.getnnz(axis=1) == 2).all()
    for i in range(4):
        kept = set(top[i].indices)
        assert kept == set(np.argsort(-np.abs(full[i]), kind="stable")[:2])
        np.testing.assert_allclose(top[i].toarray()[0, list(kept)], full[i, list(kept)], rtol=1e-5)


def test_item_index_reads_neighbours_by_id():
    from hybridrec.scoring.index import build_item_index
    from scoring_data import EMB, FACTORS

    items = pd.DataFrame({"item_id": IDS, "features": FACTORS, "embedding": list(EMB), "popularity": [1.0] * 6})
    index = build_item_index(items, neighbours_pdf=pd.DataFrame(
        {"item_id": ["b1", "zz"], "neighbour_id": ["a0", "a0"], "similarity": [0.5, 0.7]}))
    assert index.neighbours[IDS.index("b1"), IDS.index("a0")] == pytest.approx(0.5)
    assert index.neighbours.nnz == 1  # an unknown item is dropped, not misplaced


def test_min_leaf_rows_reaches_lightgbm():
    """ranker.min_leaf_rows is LightGBM's min_data_in_leaf: above the rows there are, no tree can split."""
    rng = np.random.default_rng(0)
    codes = np.repeat(np.arange(100), 20)
    x = rng.normal(size=(2000, len(FEATURES))).astype(np.float32)
    labels = (x[:, FEATURES.index("als_z")] > 1.0).astype(np.int32)
    common = {"top_n": 10, "k": 5, "trees": 20, "learning_rate": 0.1, "leaves": 7, "seed": 1}
    split = fit_ranker(x, labels, codes, np.zeros(len(x), bool), min_leaf_rows=20, **common)
    unsplit = fit_ranker(x, labels, codes, np.zeros(len(x), bool), min_leaf_rows=5000, **common)
    assert max(split.importances, key=split.importances.get) == "als_z"
    assert sum(unsplit.importances.values()) == 0.0


@dataclasses.dataclass
class _ByAls:
    """A ranker that scores by the raw ALS feature: lists with a known order."""
    new_item_bar: float = np.inf

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.nan_to_num(features[:, FEATURES.index("als")], nan=-1.0).astype(np.float64)


def test_ranker_lists_re_ranked_by_mmr_give_the_second_place_to_the_other_topic():
    # An A fan who has seen b1: by ALS a0, a1, b0; a1 is nearly a copy of a0.
    index = dataclasses.replace(INDEX, neighbours=NEIGHBOURS)

    def lists(diversity: float) -> list[str]:
        p = params(("hybrid", dataclasses.replace(RANKED, diversity=diversity)), ranker=_ByAls(), top_n=2,
                   candidates_per_source=10, new_item_candidates=5)
        out = score_block(["u"], [np.array([1.0, 0.0], np.float32)], [hist([4])], index, p)
        assert out["rank"].tolist() == [1, 2]
        return out["item_id"].tolist()

    assert lists(0.0) == ["a0", "a1"]
    assert lists(0.5) == ["a0", "b0"]


def test_ranker_lists_obey_the_rules_with_a_large_candidate_pool():
    """Candidate indices run past the catalogue size here (two users' candidates): rules and MMR must
    look at item positions, not candidate indices."""
    from hybridrec.scoring.rules import BLOCKED, ItemRules

    index = dataclasses.replace(INDEX, neighbours=NEIGHBOURS)
    excluded = np.zeros(len(IDS), np.int8)
    excluded[IDS.index("a0")] = BLOCKED
    rules = ItemRules(excluded=excluded, category=np.full(len(IDS), -1), category_cap=0, extra_candidates=2)
    p = params(("hybrid", dataclasses.replace(RANKED, diversity=0.3)), ranker=_ByAls(), top_n=2,
               candidates_per_source=10, new_item_candidates=5, rules=rules)
    users = [np.array([1.0, 0.0], np.float32)] * 3
    out = score_block(["u0", "u1", "u2"], users, [hist([4]), hist([4]), hist([4])], index, p)
    kept = out[out["removed_by"].isna()]
    assert kept.groupby("user_id")["item_id"].apply(list).to_dict() == {u: ["a1", "b0"] for u in ("u0", "u1", "u2")}
    gone = out[out["removed_by"].notna()]
    assert gone[["user_id", "item_id", "removed_by"]].values.tolist() == [[u, "a0", "blocked"] for u in ("u0", "u1", "u2")]
