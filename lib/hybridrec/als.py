"""Collaborative filtering with Spark MLlib ALS on implicit feedback."""

from __future__ import annotations

from datetime import date

from pyspark.ml.feature import StringIndexer, StringIndexerModel
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.config import AlsConfig

USER_IDX = "user_idx"
ITEM_IDX = "item_idx"
CONFIDENCE = "confidence"


def build_indexer(id_col: str, index_col: str) -> StringIndexer:
    """Numbers distinct ids 0..n-1 in id order (ALS needs int ids; ours are strings)."""
    return StringIndexer(inputCol=id_col, outputCol=index_col, stringOrderType="alphabetAsc")


def with_dense_index(ids_df: DataFrame, indexer: StringIndexerModel) -> DataFrame:
    """Distinct ids with their integer index from a fitted indexer."""
    distinct = ids_df.select(indexer.getInputCol()).distinct()
    indexed = indexer.transform(distinct)
    return indexed.withColumn(indexer.getOutputCol(), F.col(indexer.getOutputCol()).cast("int"))


def with_confidence(interactions_df: DataFrame, user_index_df: DataFrame, item_index_df: DataFrame) -> DataFrame:
    """One row per (user, item): the summed event weights, on the integer indices."""
    summed = interactions_df.groupBy(S.USER_ID, S.ITEM_ID).agg(F.sum(S.WEIGHT).cast("float").alias(CONFIDENCE))
    return (summed.join(user_index_df, S.USER_ID).join(item_index_df, S.ITEM_ID)
            .select(USER_IDX, ITEM_IDX, CONFIDENCE))


def build_als(cfg: AlsConfig, parallelism: int) -> ALS:
    """`parallelism` (the cluster's cores) sets the block counts when `cfg.blocks` is 0: more blocks
    than cores only add shuffle work."""
    blocks = cfg.blocks or max(1, parallelism)
    return ALS(
        rank=cfg.rank, maxIter=cfg.max_iter, regParam=cfg.reg_param, alpha=cfg.alpha,
        implicitPrefs=True, userCol=USER_IDX, itemCol=ITEM_IDX, ratingCol=CONFIDENCE,
        seed=cfg.seed, checkpointInterval=cfg.checkpoint_interval, nonnegative=False,
        numUserBlocks=blocks, numItemBlocks=blocks,
    )


def factors_frames(
    model: ALSModel, user_index_df: DataFrame, item_index_df: DataFrame, ds: date
) -> tuple[DataFrame, DataFrame]:
    """user_factors and item_factors rows (string ids, ds-stamped) from a fitted model."""
    def to_rows(factors: DataFrame, index_df: DataFrame, id_col: str, idx_col: str) -> DataFrame:
        joined = factors.join(index_df, factors["id"] == index_df[idx_col])
        return joined.select(
            F.col(id_col), F.col(S.FEATURES).cast("array<float>").alias(S.FEATURES), F.lit(ds).alias(S.DS)
        )

    return (to_rows(model.userFactors, user_index_df, S.USER_ID, USER_IDX),
            to_rows(model.itemFactors, item_index_df, S.ITEM_ID, ITEM_IDX))
