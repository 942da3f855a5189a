"""The explanation string of each recommendation: deterministic text from the signal that ranked the
row (scoring's `signal`), its strategy, the title of its reason item and the item's category. No
model call, so the same night always explains itself the same way."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.transforms.rules import CATEGORY, item_category


def explanation(signal: Column, strategy: Column, reason_title: Column, category: Column) -> Column:
    """'new: similar to X' | 'popular now in C' | 'liked by people who liked X' | 'because you liked X',
    with a plainer text when there is no reason item or category."""
    def with_reason(prefix: str, fallback: str) -> Column:
        return F.when(reason_title.isNotNull(), F.concat(F.lit(prefix), reason_title)).otherwise(F.lit(fallback))

    popular = F.when(category.isNotNull(), F.concat(F.lit("popular now in "), category)).otherwise(F.lit("popular now"))
    return (F.when(strategy == S.NEW_ITEM, with_reason("new: similar to ", "new in the catalogue"))
            .when((strategy == S.POPULARITY_STRATEGY) | (signal == "popularity"), popular)
            .when(signal.isin("als", "cooc"), with_reason("liked by people who liked ", "liked by people with your tastes"))
            .otherwise(with_reason("because you liked ", "because it matches your tastes")))


def with_explanations(scored_df: DataFrame, items_df: DataFrame, *, categories: list[str]) -> DataFrame:
    """`scored_df` (schema.SCORED_SCHEMA) plus `explanation`."""
    item_side = items_df.select(S.ITEM_ID, item_category(categories).alias(CATEGORY),
                                F.coalesce(S.TITLE, S.ITEM_ID).alias("_title"))
    reasons = item_side.select(F.col(S.ITEM_ID).alias("_reason_id"), F.col("_title").alias("_reason_title"))
    joined = (scored_df.join(F.broadcast(item_side.drop("_title")), S.ITEM_ID, "left")
              .join(F.broadcast(reasons), F.col(S.REASON_ITEM_ID) == F.col("_reason_id"), "left"))
    text = explanation(F.col(S.SIGNAL), F.col(S.STRATEGY), F.col("_reason_title"), F.col(CATEGORY))
    return joined.select(*scored_df.columns, text.alias(S.EXPLANATION))
