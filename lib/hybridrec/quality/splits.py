"""Holdout splits as pure DataFrame transformations.

Protocol: per user, the last `test_fraction` of their events (by time) are test (`per_user`), a
seeded random `test_fraction` of each user's events (`random`, the protocol of the Microsoft
Recommenders benchmark), or every event at or after a global time cutoff is test (`global_time`). Relevant = test events with a
positive weight on items the user did not touch in training. Cold items are relevant items that
have no training interaction at all; light users have few training interactions.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from hybridrec import schema as S

IS_TEST = "is_test"
IS_COLD = "is_cold"
IS_LIGHT = "is_light"
N_TRAIN = "n_train"


def with_per_user_split(interactions_df: DataFrame, test_fraction: float) -> DataFrame:
    """Adds is_test: each user's last ceil(n * test_fraction) events (users with one event keep it in training)."""
    by_user = Window.partitionBy(S.USER_ID)
    position = F.row_number().over(by_user.orderBy(S.EVENT_TS, S.ITEM_ID, S.WEIGHT))
    n = F.count(F.lit(1)).over(by_user)
    n_test = F.when(n < 2, 0).otherwise(F.ceil(n * test_fraction))
    return interactions_df.withColumn(IS_TEST, position > n - n_test)


def with_random_split(interactions_df: DataFrame, test_fraction: float, seed: int) -> DataFrame:
    """Adds is_test: a seeded random ceil(n * test_fraction) of each user's events (users with one
    event keep it in training). The order is a hash of the event and the seed, so the same input and
    seed give the same split on any number of partitions."""
    by_user = Window.partitionBy(S.USER_ID)
    draw = F.xxhash64(S.USER_ID, S.ITEM_ID, S.EVENT_TS, S.WEIGHT, F.lit(seed))
    position = F.row_number().over(by_user.orderBy(draw, S.ITEM_ID, S.EVENT_TS))
    n = F.count(F.lit(1)).over(by_user)
    n_test = F.when(n < 2, 0).otherwise(F.ceil(n * test_fraction))
    return interactions_df.withColumn(IS_TEST, position <= n_test)


def with_time_split(interactions_df: DataFrame, cutoff_epoch_s: float) -> DataFrame:
    """Adds is_test: events at or after the cutoff."""
    return interactions_df.withColumn(IS_TEST, F.unix_timestamp(S.EVENT_TS) >= F.lit(cutoff_epoch_s))


def training_part(split_df: DataFrame) -> DataFrame:
    return split_df.filter(~F.col(IS_TEST)).drop(IS_TEST)


def relevant_items(split_df: DataFrame, positive_min_weight: float) -> DataFrame:
    """user_id, item_id, is_cold: positive test items the user did not interact with in training."""
    train = training_part(split_df)
    positives = (split_df.filter(F.col(IS_TEST) & (F.col(S.WEIGHT) >= positive_min_weight))
                 .select(S.USER_ID, S.ITEM_ID).distinct())
    unseen = positives.join(train.select(S.USER_ID, S.ITEM_ID), [S.USER_ID, S.ITEM_ID], "left_anti")
    warm_items = train.select(S.ITEM_ID).distinct().withColumn("_warm", F.lit(True))
    return unseen.join(warm_items, S.ITEM_ID, "left").select(
        S.USER_ID, S.ITEM_ID, F.col("_warm").isNull().alias(IS_COLD))


def evaluation_users(split_df: DataFrame, relevant_df: DataFrame, light_max: int) -> DataFrame:
    """user_id, n_train, is_light for users with training events and at least one relevant item."""
    per_user = training_part(split_df).groupBy(S.USER_ID).agg(F.count(F.lit(1)).alias(N_TRAIN))
    with_relevant = relevant_df.select(S.USER_ID).distinct()
    return per_user.join(with_relevant, S.USER_ID).withColumn(IS_LIGHT, F.col(N_TRAIN) <= light_max)


def sample_users(users_df: DataFrame, max_users: int, seed: int) -> DataFrame:
    """A seeded, deterministic sample of at most max_users rows (0 = all)."""
    if max_users <= 0:
        return users_df
    return users_df.orderBy(F.xxhash64(S.USER_ID, F.lit(seed)), S.USER_ID).limit(max_users)
