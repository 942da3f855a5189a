"""The encoder's training pairs, built in Spark from interactions: known answers on tiny frames."""

from __future__ import annotations

from datetime import datetime

from hybridrec import schema as S
from hybridrec.transforms import pairs as P

COLUMNS = [S.USER_ID, S.ITEM_ID, S.EVENT_TS, S.WEIGHT]


def _frame(spark, rows):
    return spark.createDataFrame([(u, i, datetime(2026, 11, 1 + d), float(w)) for u, i, d, w in rows], COLUMNS)


def _pairs(df) -> dict[tuple[str, str], int]:
    return {(r[P.ITEM_A], r[P.ITEM_B]): r[P.N_USERS] for r in df.collect()}


def test_pairs_are_next_positives_within_the_window_counted_once_per_user(spark):
    rows = [
        # u1: a, b, c on days 0, 1, 2; d on day 20 (beyond a 10-day window from c); x is a negative (weight 1)
        ("u1", "a", 0, 5), ("u1", "b", 1, 5), ("u1", "c", 2, 4), ("u1", "x", 3, 1), ("u1", "d", 20, 5),
        # u2: b then a (the pair is unordered), liked twice (counted once), then c the next day
        ("u2", "b", 0, 5), ("u2", "a", 1, 5), ("u2", "a", 2, 5), ("u2", "c", 3, 5),
    ]
    found = P.with_cooccurrence_pairs(_frame(spark, rows), positive_min_weight=4, window_days=10, neighbours=2,
                                      min_users=1)
    # u1 with 2 neighbours: (a,b) (a,c) (b,c); c-d is 18 days apart. u2: (a,b) (a,c) (b,c) [b->a, b->c, a->c]
    assert _pairs(found) == {("a", "b"): 2, ("a", "c"): 2, ("b", "c"): 2}
    one_neighbour = P.with_cooccurrence_pairs(_frame(spark, rows), positive_min_weight=4, window_days=10,
                                              neighbours=1, min_users=2)
    # u1: (a,b) (b,c); u2: (a,b) (a,c): only (a,b) is made by two users
    assert _pairs(one_neighbour) == {("a", "b"): 2}
    wide = P.with_cooccurrence_pairs(_frame(spark, rows), positive_min_weight=4, window_days=30, neighbours=1,
                                     min_users=1)
    assert ("c", "d") in _pairs(wide)


def test_top_pairs_caps_each_item_and_keeps_the_most_frequent(spark):
    pairs = spark.createDataFrame([("hit", f"i{k}", 10 - k) for k in range(6)] + [("i0", "i1", 1), ("j", "k", 3)],
                                  [P.ITEM_A, P.ITEM_B, P.N_USERS])
    top = P.top_pairs(pairs, max_pairs=4, max_per_item=2)
    # "hit" keeps only its two strongest pairs; then j-k (3) and i0-i1 (1) fill the four places
    assert [(r[P.ITEM_A], r[P.ITEM_B]) for r in top.collect()] == [("hit", "i0"), ("hit", "i1"), ("j", "k"), ("i0", "i1")]
    items = spark.createDataFrame([("hit", "Hit film"), ("i0", "Zero"), ("j", "Jay")], [S.ITEM_ID, S.TEXT])
    texts = P.with_pair_texts(top, items).collect()  # pairs with an unknown item (i1, k) are dropped
    assert [(r[P.TEXT_A], r[P.TEXT_B]) for r in texts] == [("Hit film", "Zero")]
