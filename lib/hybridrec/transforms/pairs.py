"""Training pairs for the encoder, from behaviour: two items one user liked close together in time.

Each positive event is paired with the same user's next `neighbours` positives that come within
`window_days` (linear in the events, unlike all pairs of a user's history, which is quadratic for the
heaviest users). A pair of items counts once per user; pairs made by at least `min_users` users are
kept, the most frequent first. The encoder then learns that the two texts belong together, with the
other pairs of its batch as negatives.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from hybridrec import schema as S

ITEM_A, ITEM_B, N_USERS = "item_a", "item_b", "n_users"
TEXT_A, TEXT_B = "text_a", "text_b"


def with_cooccurrence_pairs(interactions_df: DataFrame, *, positive_min_weight: float, window_days: float,
                            neighbours: int, min_users: int) -> DataFrame:
    """item_a < item_b, n_users: unordered item pairs liked by the same user within the window."""
    seconds = window_days * 86400.0
    positives = (interactions_df.where(F.col(S.WEIGHT) >= positive_min_weight)
                 .groupBy(S.USER_ID, S.ITEM_ID).agg(F.min(S.EVENT_TS).alias(S.EVENT_TS)))  # first time liked
    order = Window.partitionBy(S.USER_ID).orderBy(S.EVENT_TS, S.ITEM_ID)
    t = F.unix_timestamp(S.EVENT_TS)
    nexts = [F.struct(F.lead(S.ITEM_ID, k).over(order).alias("item"),
                      F.lead(t, k).over(order).alias("t")) for k in range(1, neighbours + 1)]
    pairs = (positives.select(S.USER_ID, S.ITEM_ID, t.alias("t"), F.array(*nexts).alias("next"))
             .select(S.USER_ID, S.ITEM_ID, "t", F.explode("next").alias("n"))
             .where(F.col("n.item").isNotNull() & (F.col("n.t") - F.col("t") <= seconds))
             .select(S.USER_ID, F.least(S.ITEM_ID, "n.item").alias(ITEM_A), F.greatest(S.ITEM_ID, "n.item").alias(ITEM_B))
             .distinct())
    return (pairs.groupBy(ITEM_A, ITEM_B).agg(F.count(F.lit(1)).alias(N_USERS))
            .where(F.col(N_USERS) >= min_users))


def with_pair_texts(pairs_df: DataFrame, items_df: DataFrame) -> DataFrame:
    """Adds text_a, text_b (the items' embedding texts); pairs with an item outside `items_df` are dropped."""
    texts = items_df.select(S.ITEM_ID, S.TEXT)
    return (pairs_df.join(texts.withColumnsRenamed({S.ITEM_ID: ITEM_A, S.TEXT: TEXT_A}), ITEM_A)
            .join(texts.withColumnsRenamed({S.ITEM_ID: ITEM_B, S.TEXT: TEXT_B}), ITEM_B))


def top_pairs(pairs_df: DataFrame, max_pairs: int, max_per_item: int) -> DataFrame:
    """The `max_pairs` pairs made by the most users, each item in at most `max_per_item` of them as
    item_a and as item_b (so a few blockbusters do not make most of the pairs); ties broken by the
    item ids (deterministic)."""
    strongest = [F.desc(N_USERS), ITEM_A, ITEM_B]
    capped = (pairs_df.withColumn("_ra", F.row_number().over(Window.partitionBy(ITEM_A).orderBy(*strongest)))
              .withColumn("_rb", F.row_number().over(Window.partitionBy(ITEM_B).orderBy(*strongest)))
              .where((F.col("_ra") <= max_per_item) & (F.col("_rb") <= max_per_item)).drop("_ra", "_rb"))
    return capped.orderBy(*strongest).limit(max_pairs)
