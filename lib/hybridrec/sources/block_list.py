"""The per-user block list of the business rules: a table of user_id, item_id read from files.

A block list is a promise to users (or a legal duty), so it fails closed: a row that cannot be
used stops the night with the file and the rows named, instead of publishing lists that might
hold an item someone asked never to see."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hybridrec.config import RulesConfig
from hybridrec.errors import BlockListError
from hybridrec.schema import ITEM_ID, USER_ID
from hybridrec.sources.readers import read_source


def read_user_blocks(spark: SparkSession, cfg: RulesConfig) -> DataFrame | None:
    """user_id, item_id (trimmed, distinct); None when rules.user_block_list is empty."""
    if not cfg.user_block_list:
        return None
    raw = read_source(spark, cfg.user_block_list, cfg.user_block_list_format, what="user block list",
                      required=[USER_ID, ITEM_ID], allow_empty=True)
    rows = raw.select(*[F.nullif(F.trim(F.col(c)), F.lit("")).alias(c) for c in (USER_ID, ITEM_ID)], "source")
    bad = rows.where(F.col(USER_ID).isNull() | F.col(ITEM_ID).isNull())
    examples = bad.limit(3).collect()
    if examples:
        raise BlockListError(
            f"user block list {cfg.user_block_list}: expected a user_id and an item_id on every row, found "
            f"{bad.count()} row(s) without one, e.g. {[r.asDict() for r in examples]}; fix the file, or the night "
            f"would publish lists the block list may forbid")
    return rows.select(USER_ID, ITEM_ID).distinct()
