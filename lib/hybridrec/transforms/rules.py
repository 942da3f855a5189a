"""Spark transforms behind the business rules (scoring/rules.py applies them to the lists): each
item's availability at the end of the run date and its category, and users' own block lists."""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from hybridrec import schema as S

UNAVAILABLE = "unavailable"
CATEGORY = "category"


def with_item_rule_columns(items_df: DataFrame, *, ds: date, categories: list[str]) -> DataFrame:
    """item_id, unavailable (outside its available_from/available_to window at the end of `ds`, when
    the night's lists take effect), category (its first tag in `categories`; empty list: its first tag)."""
    end = F.lit(S.day_end(ds)).cast("timestamp")
    outside = (F.coalesce(F.col(S.AVAILABLE_FROM) > end, F.lit(False))
               | F.coalesce(F.col(S.AVAILABLE_TO) <= end, F.lit(False)))
    return items_df.select(S.ITEM_ID, outside.alias(UNAVAILABLE), item_category(categories).alias(CATEGORY))


def item_category(categories: list[str]) -> Column:
    """An item's category: its first tag in `categories` (lower-cased, as ingest stores tags); with
    no categories configured, its first tag; null when it has none."""
    tags = F.coalesce(F.col(S.TAGS), F.array().cast("array<string>"))
    if categories:
        wanted = F.array(*[F.lit(c.lower()) for c in categories])
        tags = F.filter(tags, lambda t: F.array_contains(wanted, t))
    return F.get(tags, 0)


def with_user_blocks(blocks_df: DataFrame, item_positions_df: DataFrame) -> DataFrame:
    """user_id, blocked_pos (index positions of the items on the user's block list; unknown items dropped)."""
    positioned = blocks_df.select(S.USER_ID, S.ITEM_ID).distinct().join(item_positions_df, S.ITEM_ID)
    return positioned.groupBy(S.USER_ID).agg(F.collect_list(S.ITEM_POS).alias(S.BLOCKED_POS))

