"""Spark transforms that prepare scoring and shape its output: popularity, per-user histories,
popularity lists for users without history, and the run columns of `recommendations`."""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.scoring.rules import RULES, USER_BLOCKED

_HISTORY = "_history"


def with_popularity(interactions_df: DataFrame, *, as_of_epoch_s: float, half_life_days: float) -> DataFrame:
    """item_id, popularity (recency-decayed count of distinct users per item), first_event_s (the
    item's first interaction, epoch seconds: its age is a ranker feature)."""
    per_user = interactions_df.groupBy(S.USER_ID, S.ITEM_ID).agg(F.max(S.EVENT_TS).alias("_last"),
                                                                 F.min(S.EVENT_TS).alias("_first"))
    age_days = (F.lit(as_of_epoch_s) - F.unix_timestamp("_last")) / 86400.0
    decay = F.pow(F.lit(0.5), age_days / half_life_days)
    return per_user.groupBy(S.ITEM_ID).agg(F.sum(decay).alias(S.POPULARITY),
                                           F.min(F.unix_timestamp("_first")).cast("double").alias(S.FIRST_EVENT_S))


def with_histories(interactions_df: DataFrame, item_positions_df: DataFrame, user_factors_df: DataFrame) -> DataFrame:
    """One row per user with history: user_id, hist_pos, hist_weight, hist_ts (aligned arrays), features."""
    per_item = interactions_df.groupBy(S.USER_ID, S.ITEM_ID).agg(
        F.sum(S.WEIGHT).alias("weight"), F.max(F.unix_timestamp(S.EVENT_TS)).alias("ts")
    )
    positioned = per_item.join(item_positions_df, S.ITEM_ID)
    histories = positioned.groupBy(S.USER_ID).agg(
        F.collect_list(F.struct(F.col(S.ITEM_POS).alias("pos"), "weight", "ts")).alias(_HISTORY)
    )
    # Field extraction from one array of structs keeps the three arrays aligned.
    histories = histories.select(
        S.USER_ID,
        F.col(_HISTORY)["pos"].alias(S.HIST_POS),
        F.col(_HISTORY)["weight"].alias(S.HIST_WEIGHT),
        F.col(_HISTORY)["ts"].cast("array<double>").alias(S.HIST_TS),
    )
    factors = user_factors_df.select(S.USER_ID, S.FEATURES)
    return histories.join(factors, S.USER_ID, "left")


def with_popularity_recommendations(users_df: DataFrame, top_df: DataFrame, *, top_n: int,
                                    blocks_df: DataFrame | None = None) -> DataFrame:
    """schema.SCORED_SCHEMA rows giving every user in `users_df` the popularity list `top_df` (rank,
    item_id, score, removed_by: scoring.rules.ruled_popularity), minus the items on the user's own
    block list (`blocks_df`: user_id, item_id; such rows are kept as removed_by user_blocked when
    they were within the top_n), ranked 1..top_n."""
    rows = users_df.select(S.USER_ID).crossJoin(F.broadcast(top_df))
    if blocks_df is not None:
        blocked = blocks_df.select(S.USER_ID, S.ITEM_ID).distinct().withColumn("_blocked", F.lit(True))
        rows = rows.join(blocked, [S.USER_ID, S.ITEM_ID], "left")
        rows = rows.withColumn("_user_blocked", F.col(S.REMOVED_BY).isNull() & F.col("_blocked").isNotNull())
        rows = rows.withColumn(S.REMOVED_BY, F.when(F.col("_user_blocked"), F.lit(RULES[USER_BLOCKED - 1]))
                               .otherwise(F.col(S.REMOVED_BY)))
        kept = rows.where(F.col(S.REMOVED_BY).isNull()).withColumn(
            S.RANK, F.row_number().over(Window.partitionBy(S.USER_ID).orderBy(S.RANK)))
        # A blocked row counts as removed when it was within the top_n; the item-side removals already are.
        gone = rows.where(F.col(S.REMOVED_BY).isNotNull() & (~F.col("_user_blocked") | (F.col(S.RANK) <= top_n)))
        rows = kept.where(F.col(S.RANK) <= top_n).unionByName(gone.withColumn(S.RANK, F.lit(0)))
    else:
        rows = rows.where((F.col(S.RANK) <= top_n) | F.col(S.REMOVED_BY).isNotNull())
    return rows.select(
        S.USER_ID, F.col(S.RANK).cast("int").alias(S.RANK), S.ITEM_ID, S.SCORE,
        F.lit(None).cast("double").alias(S.ALS_SCORE),
        F.lit(None).cast("double").alias(S.CONTENT_SCORE),
        F.lit(None).cast("string").alias(S.REASON_ITEM_ID),
        F.lit(S.POPULARITY_STRATEGY).alias(S.STRATEGY),
        F.lit("popularity").alias(S.SIGNAL),
        F.col(S.REMOVED_BY).cast("string").alias(S.REMOVED_BY),
    )


def with_run_columns(scored_df: DataFrame, *, run_id: str, ds: date) -> DataFrame:
    """Rows in the `recommendations` contract (published rows: removed_by is null); `scored_df` has
    the explanation (with_explanations), the variant and the model_version of its arm."""
    return scored_df.where(F.col(S.REMOVED_BY).isNull()).withColumns(
        {S.RUN_ID: F.lit(run_id), S.DS: F.lit(ds)}).select(*S.RECOMMENDATIONS.columns)
