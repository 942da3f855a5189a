"""Item-item co-occurrence neighbours, computed in Spark: a candidate source and a ranker feature.

Two items co-occur when one user liked both. Each user contributes their `max_user_items` most
recent positive items (a user with thousands of events would otherwise add millions of pairs, and
what they did long ago says little about what goes together now). The similarity is the cosine of
the items' user sets, count(i, j) / sqrt(n_i * n_j), and each item keeps its `max_neighbours` best.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from hybridrec import schema as S

NEIGHBOUR_ID = "neighbour_id"
SIMILARITY = "similarity"


def with_item_neighbours(interactions_df: DataFrame, *, positive_min_weight: float, max_user_items: int,
                         max_neighbours: int) -> DataFrame:
    """item_id, neighbour_id, similarity: each item's best co-occurring items (never itself)."""
    liked = (interactions_df.groupBy(S.USER_ID, S.ITEM_ID)
             .agg(F.sum(S.WEIGHT).alias("_w"), F.max(S.EVENT_TS).alias("_ts"))
             .filter(F.col("_w") >= positive_min_weight))
    newest = F.row_number().over(Window.partitionBy(S.USER_ID).orderBy(F.col("_ts").desc(), S.ITEM_ID))
    liked = liked.withColumn("_n", newest).filter(F.col("_n") <= max_user_items).select(S.USER_ID, S.ITEM_ID)
    users_per_item = liked.groupBy(S.ITEM_ID).agg(F.count(F.lit(1)).alias("_users"))
    other = liked.select(S.USER_ID, F.col(S.ITEM_ID).alias(NEIGHBOUR_ID))
    pairs = (liked.join(other, S.USER_ID).filter(F.col(S.ITEM_ID) != F.col(NEIGHBOUR_ID))
             .groupBy(S.ITEM_ID, NEIGHBOUR_ID).agg(F.count(F.lit(1)).alias("_both")))
    n_i = users_per_item.select(F.col(S.ITEM_ID), F.col("_users").alias("_ni"))
    n_j = users_per_item.select(F.col(S.ITEM_ID).alias(NEIGHBOUR_ID), F.col("_users").alias("_nj"))
    scored = (pairs.join(F.broadcast(n_i), S.ITEM_ID).join(F.broadcast(n_j), NEIGHBOUR_ID)
              .withColumn(SIMILARITY, (F.col("_both") / F.sqrt(F.col("_ni") * F.col("_nj"))).cast("float")))
    best = F.row_number().over(Window.partitionBy(S.ITEM_ID).orderBy(F.col(SIMILARITY).desc(), NEIGHBOUR_ID))
    return (scored.withColumn("_r", best).filter(F.col("_r") <= max_neighbours)
            .select(S.ITEM_ID, NEIGHBOUR_ID, SIMILARITY))
