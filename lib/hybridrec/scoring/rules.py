"""Business rules on each scored list before its top N, then the optional MMR order: pure numpy over
a block of users (the rules' inputs are built in steps/recommend.py).

Rules, in this order; a row is charged to the first rule that removes it:
- unavailable: outside the item's available_from/available_to window at the end of the run date;
- blocked: on the global block list;
- user_blocked: on the user's own block list;
- category_cap: its category already has category_cap items higher in the list.
Lists are chosen from a pool wider than N (`ScoringParams.pool`), so removals leave no hole: kept
rows rank 1..N. A removed row that was within the plain top N (the list without rules) is
returned as removed, so `runs` counts what each rule took out of the published lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hybridrec.scoring.diversity import mmr_rerank

RULES = ("unavailable", "blocked", "user_blocked", "category_cap")  # removed_by code i + 1
UNAVAILABLE, BLOCKED, USER_BLOCKED, CATEGORY_CAP = 1, 2, 3, 4
_BLOCK_USERS = 256  # the category cap compares every pair of a list: (users, pool, pool) booleans


@dataclass(frozen=True)
class ItemRules:
    """The item-side rules, aligned with ItemIndex positions."""
    excluded: np.ndarray          # (n_items,) int8: 0 = allowed, UNAVAILABLE or BLOCKED
    category: np.ndarray          # (n_items,) int64 category code, -1 = none
    category_cap: int             # 0 = no cap
    extra_candidates: int         # lists are chosen from top_n + this many best-scored items


def item_rules(item_ids: np.ndarray, rule_columns: pd.DataFrame, *, blocked_items: list[str], category_cap: int,
               extra_candidates: int) -> ItemRules:
    """ItemRules aligned with `item_ids` from transforms.rules.with_item_rule_columns' rows."""
    at = pd.Index(rule_columns["item_id"]).get_indexer(item_ids)
    found = at >= 0
    unavailable = np.zeros(len(item_ids), dtype=bool)
    unavailable[found] = rule_columns["unavailable"].to_numpy(bool)[at[found]]
    codes, _ = pd.factorize(rule_columns["category"])  # -1 for items without a category
    category = np.full(len(item_ids), -1, dtype=np.int64)
    category[found] = codes[at[found]]
    excluded = np.where(unavailable, UNAVAILABLE, np.where(np.isin(item_ids, blocked_items), BLOCKED, 0))
    return ItemRules(excluded.astype(np.int8), category, category_cap, extra_candidates)


def rule_codes(items: np.ndarray, valid: np.ndarray, user_blocked: list[np.ndarray], rules: ItemRules) -> np.ndarray:
    """(users, m) int8: 0 = kept, else the rule's code, for lists of item positions best first."""
    codes = np.where(valid, rules.excluded[items], 0).astype(np.int8)
    for row, blocked in enumerate(user_blocked):
        if len(blocked):
            hit = valid[row] & (codes[row] == 0) & np.isin(items[row], blocked)
            codes[row, hit] = USER_BLOCKED
    if rules.category_cap > 0:
        m = items.shape[1]
        earlier = np.tril(np.ones((m, m), dtype=bool), -1)  # [j, i]: i is above j
        for start in range(0, len(items), _BLOCK_USERS):
            part = slice(start, start + _BLOCK_USERS)
            cat = np.where(valid[part] & (codes[part] == 0), rules.category[items[part]], -1)
            # Rows the cap removes need not be left out of the count: each already has cap above it.
            above = ((cat[:, :, None] == cat[:, None, :]) & earlier & (cat[:, None, :] >= 0)).sum(axis=2)
            codes[part][(cat >= 0) & (above >= rules.category_cap)] = CATEGORY_CAP
    return codes


def finish_lists(items: np.ndarray, scores: np.ndarray, *, top_n: int, rules: ItemRules | None,
                 user_blocked: list[np.ndarray], content: np.ndarray, diversity: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The published order of each pool and the rules' removals.

    items, scores: (users, m) pools best first, -inf where a row has fewer candidates. Returns
    `order` (users, min(top_n, m)) columns of the pool in list order (-1 past a list's end) and
    `removed` (users, m) int8: the rule code of each removed row that was within the plain top N.
    """
    valid = np.isfinite(scores)
    removed = np.zeros(items.shape, dtype=np.int8)
    if rules is not None:
        codes = rule_codes(items, valid, user_blocked, rules)
        removed = np.where(np.arange(items.shape[1]) < top_n, codes, 0).astype(np.int8)
        valid &= codes == 0
        scores = np.where(valid, scores, -np.inf)
    k = min(top_n, items.shape[1])
    if diversity > 0:
        order = mmr_rerank(scores, items, content, k, diversity)
    else:  # kept rows keep their order; removed ones move past the end
        order = np.argsort(~valid, axis=1, kind="stable")[:, :k]
    order = np.where(np.take_along_axis(valid, order, axis=1), order, -1)
    return order, removed


def ruled_popularity(top: pd.DataFrame, item_ids: np.ndarray, top_n: int, rules: ItemRules | None) -> pd.DataFrame:
    """The popularity list for users without history (`top`: rank, item_id, score, best first, top_n
    plus the rules' extra rows) after the item-side rules: kept rows ranked 1.. (more than top_n, so
    a user's own block list can still be filled), then the removed rows of the plain top N (rank 0)."""
    top = top.assign(removed_by=None)
    if rules is None:
        return top[top["rank"] <= top_n]
    items = pd.Index(item_ids).get_indexer(top["item_id"])[None, :]
    order, removed = finish_lists(items, top["score"].to_numpy(np.float64)[None, :], top_n=len(top), rules=rules,
                                  user_blocked=[np.zeros(0, np.int64)], content=np.zeros((len(item_ids), 0)),
                                  diversity=0.0)
    kept = top.iloc[order[0][order[0] >= 0]].assign(rank=lambda d: np.arange(1, len(d) + 1, dtype=np.int32))
    gone = removed[0][:top_n]
    dropped = top.iloc[np.flatnonzero(gone)].assign(rank=0, removed_by=[RULES[c - 1] for c in gone[gone > 0]])
    return pd.concat([kept, dropped], ignore_index=True)
