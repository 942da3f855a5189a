"""Ranking and beyond-accuracy metrics of top-N lists on a holdout, as DataFrame transformations
(splits come from quality.splits)."""

from __future__ import annotations

from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.quality.splits import IS_COLD, IS_LIGHT

N_RELEVANT = "n_relevant"
N_COLD = "n_cold"
SEGMENT = "segment"
METRIC = "metric"
K = "k"
VALUE = "value"
SEGMENT_ALL, SEGMENT_LIGHT, SEGMENT_COLD = "all", "light_users", "cold_items"


def _idcg(n: Column, k: int) -> Column:
    return F.aggregate(F.sequence(F.lit(1), F.least(n, F.lit(k)).cast("int")), F.lit(0.0),
                       lambda acc, i: acc + 1.0 / F.log2(i + 1))


def _long(df: DataFrame, rows: list[tuple[str, str, int, Column]]) -> DataFrame:
    """Wide per-strategy aggregates -> long rows (strategy, segment, metric, k, value)."""
    structs = [F.struct(F.lit(seg).alias(SEGMENT), F.lit(m).alias(METRIC), F.lit(k).alias(K),
                        value.cast("double").alias(VALUE)) for seg, m, k, value in rows]
    return df.select(S.STRATEGY, F.explode(F.array(*structs)).alias("_m")).select(S.STRATEGY, "_m.*")


def per_user_ranking(recs_df: DataFrame, relevant_df: DataFrame, users_df: DataFrame,
                     ks: list[int], cold_k: int) -> DataFrame:
    """strategy, user_id, is_light, cold_recall, and precision_k, recall_k, ndcg_k, map_k, hit_rate_k
    for each k: one row per (strategy, evaluated user); users with no recommendations count as zeros."""
    counts = relevant_df.groupBy(S.USER_ID).agg(
        F.count(F.lit(1)).alias(N_RELEVANT), F.sum(F.col(IS_COLD).cast("int")).alias(N_COLD))
    users = users_df.select(S.USER_ID, IS_LIGHT).join(counts, S.USER_ID)
    strategies = recs_df.select(S.STRATEGY).distinct()
    hits = (recs_df.join(users.select(S.USER_ID), S.USER_ID)
            .join(relevant_df, [S.USER_ID, S.ITEM_ID])
            .withColumn("_nth_hit", F.row_number().over(
                Window.partitionBy(S.STRATEGY, S.USER_ID).orderBy(S.RANK))))
    aggs = [F.count(F.when(F.col(IS_COLD) & (F.col(S.RANK) <= cold_k), 1)).alias("cold_hits")]
    for k in ks:
        within = F.col(S.RANK) <= k
        aggs += [F.count(F.when(within, 1)).alias(f"hits_{k}"),
                 F.sum(F.when(within, 1.0 / F.log2(F.col(S.RANK) + 1))).alias(f"dcg_{k}"),
                 F.sum(F.when(within, F.col("_nth_hit") / F.col(S.RANK))).alias(f"ap_{k}")]
    per_user = (users.crossJoin(strategies)
                .join(hits.groupBy(S.STRATEGY, S.USER_ID).agg(*aggs), [S.STRATEGY, S.USER_ID], "left")
                .fillna(0))
    columns = [F.col(S.STRATEGY), F.col(S.USER_ID), F.col(IS_LIGHT),
               F.when(F.col(N_COLD) > 0, F.col("cold_hits") / F.col(N_COLD)).alias("cold_recall")]
    for k in ks:
        hits_k = F.col(f"hits_{k}")
        columns += [(hits_k / k).alias(f"precision_{k}"), (hits_k / F.col(N_RELEVANT)).alias(f"recall_{k}"),
                    (F.col(f"dcg_{k}") / _idcg(F.col(N_RELEVANT), k)).alias(f"ndcg_{k}"),
                    (F.col(f"ap_{k}") / F.least(F.col(N_RELEVANT), F.lit(k))).alias(f"map_{k}"),
                    (hits_k > 0).cast("double").alias(f"hit_rate_{k}")]
    return per_user.select(*columns)


def ranking_metrics(recs_df: DataFrame, relevant_df: DataFrame, users_df: DataFrame,
                    ks: list[int], cold_k: int) -> DataFrame:
    """Accuracy per strategy: precision, recall, ndcg, map, hit_rate at each k (segments all and
    light_users), recall@cold_k on cold items (segment cold_items), and the number of users.

    recs_df: strategy, user_id, rank, item_id. Users with no recommendations count as zeros.
    """
    per_user = per_user_ranking(recs_df, relevant_df, users_df, ks, cold_k)
    # One aggregation for every segment (a union of three would recompute per_user's joins three times).
    names = ("precision", "recall", "ndcg", "map", "hit_rate")
    aggs, rows = [], []
    for segment, keep in ((SEGMENT_ALL, F.lit(True)), (SEGMENT_LIGHT, F.col(IS_LIGHT))):
        aggs += [F.avg(F.when(keep, F.col(f"{m}_{k}"))).alias(f"{segment}_{m}_{k}") for k in ks for m in names]
        aggs.append(F.count(F.when(keep, 1)).alias(f"{segment}_users"))
        rows += [(segment, m, k, F.coalesce(F.col(f"{segment}_{m}_{k}"), F.lit(0.0))) for k in ks for m in names]
        rows.append((segment, "users", 0, F.col(f"{segment}_users")))
    aggs += [F.avg("cold_recall").alias("cold_r"), F.count("cold_recall").alias("cold_n")]
    rows += [(SEGMENT_COLD, "recall", cold_k, F.coalesce(F.col("cold_r"), F.lit(0.0))),
             (SEGMENT_COLD, "users", 0, F.col("cold_n"))]
    return _long(per_user.groupBy(S.STRATEGY).agg(*aggs), rows)


def beyond_accuracy_metrics(recs_df: DataFrame, train_df: DataFrame, embeddings_df: DataFrame, *,
                            catalogue_size: int, ks: list[int]) -> DataFrame:
    """coverage@k (share of the catalogue recommended to anyone), novelty@k (mean -log2 of the share
    of training users who saw the item) and diversity@k (mean pairwise 1 - cosine of embeddings)."""
    n_users = train_df.select(F.countDistinct(S.USER_ID).alias("n"))
    item_users = train_df.groupBy(S.ITEM_ID).agg(F.countDistinct(S.USER_ID).alias("_users"))
    recs = (recs_df.join(item_users, S.ITEM_ID, "left").crossJoin(n_users)
            .withColumn("_self_info", -F.log2((F.coalesce("_users", F.lit(0)) + 1) / (F.col("n") + 1))))
    vectors = embeddings_df.select(S.ITEM_ID, array_to_vector(S.EMBEDDING).alias("_vec"),
                                   F.aggregate(S.EMBEDDING, F.lit(0.0), lambda acc, x: acc + x * x).alias("_sq"))
    out = []
    for k in ks:
        top = recs.filter(F.col(S.RANK) <= k)
        agg = top.groupBy(S.STRATEGY).agg(
            (F.countDistinct(S.ITEM_ID) / F.lit(max(catalogue_size, 1))).alias("coverage"),
            F.avg("_self_info").alias("novelty"))
        out.append(_long(agg, [(SEGMENT_ALL, "coverage", k, F.col("coverage")),
                               (SEGMENT_ALL, "novelty", k, F.col("novelty"))]))
        # Mean over pairs of (1 - e_i·e_j) without forming the pairs: the pair dots of one list sum to
        # (|sum e|^2 - sum |e|^2) / 2, so each list needs only its vector sum (linear in list length).
        n, sum_sq = F.col("_n"), F.aggregate(vector_to_array("_sum"), F.lit(0.0), lambda acc, x: acc + x * x)
        per_user = (top.select(S.STRATEGY, S.USER_ID, S.ITEM_ID).join(vectors, S.ITEM_ID)
                    .groupBy(S.STRATEGY, S.USER_ID)
                    .agg(Summarizer.sum(F.col("_vec")).alias("_sum"), F.sum("_sq").alias("_sq"), F.count("*").alias("_n"))
                    .where(n >= 2)
                    .select(S.STRATEGY, (1.0 - (sum_sq - F.col("_sq")) / (n * (n - 1))).alias("_ild")))
        ild = per_user.groupBy(S.STRATEGY).agg(F.avg("_ild").alias("diversity"))
        out.append(_long(ild, [(SEGMENT_ALL, "diversity", k, F.col("diversity"))]))
    result = out[0]
    for df in out[1:]:
        result = result.unionByName(df)
    return result
