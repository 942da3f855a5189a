"""Business rules on hand-made lists with known answers: each rule removes exactly what it should,
kept rows rank 1..N without holes, and removals of the plain top N are reported."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from hybridrec import schema as S
from hybridrec.scoring.index import popularity_top_n
from hybridrec.scoring.kernel import score_block
from hybridrec.scoring.rules import BLOCKED, UNAVAILABLE, ItemRules, finish_lists, item_rules, ruled_popularity
from scoring_data import A_FAN, ALS_ONLY, IDS, INDEX, hist, params

NONE = np.zeros(len(IDS), np.int8)
TOPIC = np.array([0, 0, 0, 1, 1, 1])  # a* are category 0, b* category 1


def _rules(excluded=NONE, cap: int = 0) -> ItemRules:
    return ItemRules(excluded=np.asarray(excluded, np.int8), category=TOPIC, category_cap=cap, extra_candidates=2)


def _lists(rules: ItemRules, blocked=()) -> pd.DataFrame:
    """An A fan who has seen b1: by ALS the plain top 2 is a0, a1, then b0."""
    h = dataclasses.replace(hist([4]), blocked=np.array([IDS.index(i) for i in blocked], np.int64))
    return score_block(["u"], [A_FAN], [h], INDEX, params(("als", ALS_ONLY), top_n=2, rules=rules))


def _published(out: pd.DataFrame) -> list[tuple[int, str]]:
    kept = out[out[S.REMOVED_BY].isna()]
    return list(zip(kept[S.RANK], kept[S.ITEM_ID], strict=True))


def _removed(out: pd.DataFrame) -> dict[str, str]:
    gone = out[out[S.REMOVED_BY].notna()]
    assert (gone[S.RANK] == 0).all()
    return dict(zip(gone[S.ITEM_ID], gone[S.REMOVED_BY], strict=True))


def test_without_removals_the_list_is_the_plain_one():
    out = _lists(_rules())
    assert _published(out) == [(1, "a0"), (2, "a1")] and _removed(out) == {}


def test_each_rule_removes_exactly_its_item_and_the_next_best_fills_the_place():
    unavailable = NONE.copy()
    unavailable[IDS.index("a0")] = UNAVAILABLE
    blocked = NONE.copy()
    blocked[IDS.index("a1")] = BLOCKED
    cases = [
        (_lists(_rules(unavailable)), [(1, "a1"), (2, "b0")], {"a0": "unavailable"}),
        (_lists(_rules(blocked)), [(1, "a0"), (2, "b0")], {"a1": "blocked"}),
        (_lists(_rules(), blocked=["a0"]), [(1, "a1"), (2, "b0")], {"a0": "user_blocked"}),
        (_lists(_rules(cap=1)), [(1, "a0"), (2, "b0")], {"a1": "category_cap"}),
    ]
    for out, published, removed in cases:
        assert _published(out) == published
        assert _removed(out) == removed


def test_a_row_is_charged_to_the_first_rule_that_removes_it():
    unavailable = NONE.copy()
    unavailable[IDS.index("a0")] = UNAVAILABLE
    out = _lists(_rules(unavailable), blocked=["a0"])
    assert _removed(out) == {"a0": "unavailable"}


def test_removals_beyond_the_plain_top_n_are_not_counted():
    blocked = NONE.copy()
    blocked[IDS.index("b0")] = BLOCKED  # third by score: never in the plain top 2
    out = _lists(_rules(blocked))
    assert _published(out) == [(1, "a0"), (2, "a1")] and _removed(out) == {}


def test_category_cap_counts_only_the_rows_kept_above():
    items = np.array([[0, 1, 2, 3, 4]])
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    rules = ItemRules(excluded=np.array([0, 2, 0, 0, 0, 0], np.int8), category=TOPIC, category_cap=2,
                      extra_candidates=0)
    # a1 is blocked, so a0 and a2_new are the two of category 0; b0 and b1 follow.
    order, removed = finish_lists(items, scores, top_n=4, rules=rules, user_blocked=[np.zeros(0, np.int64)],
                                  content=INDEX.content, diversity=0.0)
    assert order.tolist() == [[0, 2, 3, 4]]
    assert removed.tolist() == [[0, BLOCKED, 0, 0, 0]]


def test_item_rules_align_by_id_and_code_unavailable_before_blocked():
    columns = pd.DataFrame({"item_id": ["b0", "a0", "a1"], "unavailable": [False, True, False],
                            "category": ["drama", "comedy", None]})
    rules = item_rules(np.array(["a0", "a1", "b0", "zz"]), columns, blocked_items=["a0", "b0"], category_cap=3,
                       extra_candidates=5)
    assert rules.excluded.tolist() == [UNAVAILABLE, 0, BLOCKED, 0]
    assert rules.category[1] == -1 and rules.category[3] == -1 and rules.category[0] != rules.category[2]


def test_popularity_list_after_item_rules_keeps_extra_rows_and_reports_the_plain_top_n():
    excluded = NONE.copy()
    excluded[IDS.index("a0")] = UNAVAILABLE  # the most popular item
    top = popularity_top_n(INDEX, 4)  # a0, a1, b0, b1
    out = ruled_popularity(top, INDEX.item_ids, 2, _rules(excluded))
    kept = out[out["removed_by"].isna()]
    assert list(zip(kept["rank"], kept["item_id"], strict=True)) == [(1, "a1"), (2, "b0"), (3, "b1")]
    assert out[out["removed_by"].notna()][["item_id", "rank", "removed_by"]].values.tolist() == [["a0", 0, "unavailable"]]
    plain = ruled_popularity(top, INDEX.item_ids, 2, None)
    assert plain["item_id"].tolist() == ["a0", "a1"] and plain["removed_by"].isna().all()
