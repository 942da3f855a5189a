"""The explanation text of each kind of row, with known answers."""

from __future__ import annotations

from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.transforms.explain import with_explanations


def test_each_kind_of_row_gets_its_sentence(spark):
    items = spark.createDataFrame(
        [("a", "Alien Signal", ["space", "drama"]), ("b", None, ["comedy"]), ("c", "Compost Life", [])],
        "item_id string, title string, tags array<string>")
    scored = spark.createDataFrame([
        ("u1", 1, "b", "hybrid", "content", "a"),      # content: because you liked the reason item
        ("u1", 2, "c", "hybrid", "cooc", "a"),         # collaborative: people who liked the reason item
        ("u1", 3, "a", "hybrid", "popularity", None),  # popularity: the item's category
        ("u1", 4, "c", "new_item", None, "b"),         # a new item: similar to its reason (no title: its id)
        ("u2", 1, "a", "popularity", None, None),      # a user without history
        ("u2", 2, "c", "popularity", None, None),      # ... an item without a category
        ("u3", 1, "b", "hybrid", "als", None),         # no reason item
    ], "user_id string, rank int, item_id string, strategy string, signal string, reason_item_id string")
    got = with_explanations(scored, items, categories=["drama"]).orderBy(S.USER_ID, S.RANK)
    assert [r[S.EXPLANATION] for r in got.select(S.EXPLANATION).collect()] == [
        "because you liked Alien Signal",
        "liked by people who liked Alien Signal",
        "popular now in drama",  # "drama" is the configured category, though "space" is the first tag
        "new: similar to b",
        "popular now in drama",
        "popular now",
        "liked by people with your tastes",
    ]
    assert got.where(F.col(S.EXPLANATION).isNull()).count() == 0
