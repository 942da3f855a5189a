"""Evaluation against a holdout, reading and writing tables: the holdout of a night, scoring it with
ALS refitted on its training part, the metrics, the search behind `hybridrec tune`, and the last
published night's NDCG the gate compares with. The pure parts live in hybridrec.quality.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.config import AlsConfig, Config, positive_min_weight
from hybridrec.errors import EvaluationError
from hybridrec.io.delta import partitions, read_table
from hybridrec.quality import metrics as qm
from hybridrec.quality import splits
from hybridrec.quality.gate import ALS, HYBRID, baseline_blends, variant_strategy
from hybridrec.quality.tuning import TuneResult, als_grid, blend_grid, choose
from hybridrec.scoring import ease
from hybridrec.scoring.arrow import with_hybrid_recommendations
from hybridrec.scoring.params import Blend, blend_from_config, scoring_params
from hybridrec.scoring.ranker import RankerModel
from hybridrec.steps.context import RunContext, scoring_inputs
from hybridrec.steps.ranking import RankerOutcome, ranker_params, train_ranker
from hybridrec.transforms.als import fit_factors
from hybridrec.transforms.embed import latest_embeddings
from hybridrec.transforms.variants import CONTROL

log = logging.getLogger(__name__)


@dataclass
class Holdout:
    train: DataFrame              # interactions used for training (persisted)
    relevant: DataFrame           # user_id, item_id, is_cold (persisted)
    users: DataFrame              # user_id, n_train, is_light: the evaluated users (persisted)
    n_users: int
    n_relevant: int

    def release(self) -> None:
        for df in (self.train, self.relevant, self.users):
            df.unpersist()


def make_holdout(interactions: DataFrame, cfg: Config, *, max_users: int | None = None) -> Holdout:
    """Splits `interactions` by the configured protocol; raises EvaluationError when nothing is testable."""
    e = cfg.evaluate
    if e.protocol == "per_user":
        split = splits.with_per_user_split(interactions, e.test_fraction)
    elif e.protocol == "random":
        split = splits.with_random_split(interactions, e.test_fraction, e.sample_seed)
    else:
        seconds = interactions.select(F.unix_timestamp(S.EVENT_TS).alias("t"))
        cutoff = seconds.approxQuantile("t", [1.0 - e.test_fraction], 0.001)[0]
        split = splits.with_time_split(interactions, cutoff)
    split = split.persist()
    train = splits.training_part(split).persist()
    relevant = splits.relevant_items(split, positive_min_weight(cfg))
    users = splits.evaluation_users(split, relevant, e.light_user_max_interactions)
    users = splits.sample_users(users, e.max_users if max_users is None else max_users, e.sample_seed).persist()
    relevant = relevant.join(users.select(S.USER_ID), S.USER_ID).persist()
    n_users, n_relevant = users.count(), relevant.count()
    train.count()
    split.unpersist()
    if n_users == 0:
        raise EvaluationError(
            f"protocol {e.protocol} with test_fraction {e.test_fraction}: expected users with a positive "
            f"(weight >= {positive_min_weight(cfg)}) test event on an unseen item, found none")
    log.info("holdout (%s): %d users, %d relevant items", e.protocol, n_users, n_relevant)
    return Holdout(train, relevant, users, n_users, n_relevant)


def validation_holdout(holdout: Holdout, cfg: Config) -> Holdout:
    """The same protocol applied to the training part only: tuning never sees the test events."""
    return make_holdout(holdout.train, cfg)


def score_holdout(ctx: RunContext, holdout: Holdout, als_cfg: AlsConfig,
                  blends: dict[str, Blend], top_n: int, ranker: RankerModel | None = None,
                  ease_weights: dict | None = None, factors: tuple[DataFrame, DataFrame] | None = None) -> DataFrame:
    """strategy, user_id, rank, item_id for every evaluated user and blend, from ALS fitted on holdout.train.
    When the ranker's item-item neighbours are EASE's whole weight matrix, it is left in `ease_weights`
    (item ids, B) for the EASE reference on the same training part. `factors`: (user, item) factors
    already fitted on holdout.train with `als_cfg` (the caller keeps and releases them)."""
    user_factors, item_factors = factors or fit_factors(holdout.train, als_cfg, ctx.ds)
    params = scoring_params(ctx.cfg.recommend, positive_min_weight(ctx.cfg), ctx.ds,
                                      blends=tuple(blends.items()))
    params = dataclasses.replace(ranker_params(params, ctx.cfg, ranker), top_n=top_n, mark_new_items=False,
                                 explain=False)
    ranked = any(b.ranked for b in blends.values())
    inputs = scoring_inputs(ctx, interactions=holdout.train, items=ctx.read(S.ITEMS), item_factors=item_factors,
                            user_factors=user_factors, params=params, neighbours=ranked)
    if ease_weights is not None and isinstance(inputs.index.neighbours, np.ndarray):
        ease_weights.update(item_ids=inputs.index.item_ids, weights=inputs.index.neighbours)
    histories = inputs.histories.join(holdout.users.select(S.USER_ID), S.USER_ID)
    recs = (with_hybrid_recommendations(histories, inputs.index_bc, params)
            .select(S.STRATEGY, S.USER_ID, S.RANK, S.ITEM_ID).persist())
    recs.count()
    inputs.release()
    if factors is None:
        user_factors.unpersist()
        item_factors.unpersist()
    return recs


def holdout_metrics(ctx: RunContext, holdout: Holdout, recs: DataFrame) -> pd.DataFrame:
    """All metrics (strategy, segment, metric, k, value) for `recs` on `holdout`, on the driver."""
    e = ctx.cfg.evaluate
    items = ctx.read(S.ITEMS)
    accuracy = qm.ranking_metrics(recs, holdout.relevant, holdout.users, e.ks, e.cold_k)
    embeddings = latest_embeddings(ctx.read(S.ITEM_EMBEDDINGS), items, model=ctx.cfg.embedding.model)
    beyond = qm.beyond_accuracy_metrics(recs, holdout.train, embeddings, catalogue_size=items.count(), ks=e.ks)
    return accuracy.unionByName(beyond).toPandas()


def ease_holdout(ctx: RunContext, holdout: Holdout, top_n: int, weights: dict | None = None) -> DataFrame | None:
    """strategy (ease), user_id, rank, item_id for every evaluated user, from EASE fitted on the
    training part (binary: any interaction); None when the catalogue is above evaluate.ease_max_items.
    `weights` (item_ids, weights): B already fitted on this training part (score_holdout's), reused
    instead of inverting the items x items matrix again."""
    e = ctx.cfg.evaluate
    item_ids = sorted(r[S.ITEM_ID] for r in ctx.read(S.ITEMS).select(S.ITEM_ID).distinct().collect())
    if len(item_ids) > e.ease_max_items:
        log.warning("EASE reference skipped: %d items in the catalogue, evaluate.ease_max_items is %d",
                    len(item_ids), e.ease_max_items)
        return None
    pairs = holdout.train.select(S.USER_ID, S.ITEM_ID).distinct().toPandas()
    pairs = pairs[pairs[S.ITEM_ID].isin(item_ids)]
    evaluated = [r[S.USER_ID] for r in holdout.users.select(S.USER_ID).collect()]
    user_ids = pd.Index(sorted(set(pairs[S.USER_ID]) | set(evaluated)))
    item_index = pd.Index(item_ids)
    x = ease.interaction_matrix(user_ids.get_indexer(pairs[S.USER_ID]), item_index.get_indexer(pairs[S.ITEM_ID]),
                                len(user_ids), len(item_ids))
    rows = user_ids.get_indexer(evaluated)
    fitted = pd.Index(weights["item_ids"]).get_indexer(item_ids) if weights else None
    if fitted is not None and len(weights["item_ids"]) == len(item_ids) and (fitted >= 0).all():
        b = weights["weights"][np.ix_(fitted, fitted)]  # the same B, in this function's item order
    else:
        b = ease.ease_weights(x, e.ease_lambda)
    order = ease.ease_top_n(x[rows], b, top_n)
    ranks = np.broadcast_to(np.arange(1, top_n + 1, dtype=np.int32), order.shape)
    keep = order >= 0
    recs = pd.DataFrame({S.STRATEGY: S.EASE_STRATEGY, S.USER_ID: np.repeat(evaluated, top_n).reshape(order.shape)[keep],
                         S.RANK: ranks[keep], S.ITEM_ID: np.asarray(item_ids, dtype=object)[order[keep]]})
    schema = "strategy string, user_id string, rank int, item_id string"
    return ctx.spark.createDataFrame(recs, schema).persist()


@dataclass
class Evaluation:
    metrics: pd.DataFrame
    ranker: RankerOutcome         # the hybrid's ranker, trained on a validation split of the holdout's training part


def run_evaluation(ctx: RunContext, als_by_strategy: dict[str, AlsConfig] | None = None,
                   blends: dict[str, Blend] | None = None, *, references: bool = True) -> Evaluation:
    """Evaluates every strategy on the holdout; strategies that share ALS settings share one fit.
    The hybrid is the ranker trained on a validation split of the holdout's training part (the
    linear blend is then reported as `blend`), or the blend when no ranker could be trained.
    `references` adds EASE when the catalogue is within evaluate.ease_max_items."""
    cfg = ctx.cfg
    blends = dict(blends or baseline_blends(cfg))
    als_by_strategy = als_by_strategy or {}
    holdout = make_holdout(ctx.read(S.INTERACTIONS), cfg)
    ranker = train_ranker(ctx, holdout)
    for name, arm in cfg.arms().items():  # each variant's hybrid, scored on every evaluated user
        if name != CONTROL:
            blends[variant_strategy(name)] = dataclasses.replace(
                blend_from_config(arm.recommend), ranked=ranker.model is not None and arm.ranker.enabled)
    if ranker.model is not None:
        blends[S.BLEND_STRATEGY] = blends[HYBRID]
        blends[HYBRID] = dataclasses.replace(blends[HYBRID], ranked=True)
        als_by_strategy = {**als_by_strategy, S.BLEND_STRATEGY: als_by_strategy.get(HYBRID, cfg.als)}
    top_n = max([*cfg.evaluate.ks, cfg.evaluate.cold_k])
    groups: dict[AlsConfig, dict[str, Blend]] = {}
    for name, blend in blends.items():
        groups.setdefault(als_by_strategy.get(name, cfg.als), {})[name] = blend
    lists, fitted = [], {}
    for als_cfg, group in groups.items():
        lists.append(score_holdout(ctx, holdout, als_cfg, group, top_n, ranker.model, ease_weights=fitted))
    if references and (recs := ease_holdout(ctx, holdout, top_n, weights=fitted)) is not None:
        lists.append(recs)
    # One metrics query over every strategy's lists: each query's plan costs seconds to build and
    # optimise on small data (the gate's evaluation 26 s -> 20 s on the tests' topic data).
    metrics = holdout_metrics(ctx, holdout, functools.reduce(DataFrame.unionByName, lists))
    for recs in lists:
        recs.unpersist()
    holdout.release()
    metrics.insert(0, S.RUN_ID, ctx.run_id)
    metrics.insert(0, S.DS, ctx.ds)
    return Evaluation(metrics.astype({"k": "int32", "value": "float64"}), ranker)


def write_metrics(ctx: RunContext, metrics: pd.DataFrame) -> None:
    ctx.append(metrics[S.METRICS.columns].to_dict("records"), S.METRICS)


def previous_published_ndcg(ctx: RunContext, k: int) -> tuple[date | None, float | None]:
    """hybrid ndcg@k measured by the run that published the newest ds before this one."""
    earlier = [d for d in partitions(ctx.spark, ctx.root, S.RECOMMENDATIONS) if d < ctx.ds]
    if not earlier:
        return None, None
    previous = earlier[-1]
    recs = read_table(ctx.spark, ctx.root, S.RECOMMENDATIONS, ds=previous)
    run_id = recs.select(S.RUN_ID).first()[S.RUN_ID]
    metrics = read_table(ctx.spark, ctx.root, S.METRICS, ds=previous, required=False)
    row = (metrics.filter((F.col(S.RUN_ID) == run_id) & (F.col(S.STRATEGY) == HYBRID)
                          & (F.col("segment") == qm.SEGMENT_ALL) & (F.col("metric") == "ndcg") & (F.col("k") == k))
           .select("value").first())
    return earlier[-1], (None if row is None else float(row["value"]))


def run_tuning(ctx: RunContext) -> TuneResult:
    """Grid search on a validation split carved from the evaluation split's training part."""
    cfg, t = ctx.cfg, ctx.cfg.tune
    outer = make_holdout(ctx.read(S.INTERACTIONS), cfg)
    valid = validation_holdout(outer, cfg)
    outer.release()
    grid = {f"b{i:03d}": b for i, b in enumerate(blend_grid(t.weight_step, t.max_weight, 0))}
    grid[ALS] = Blend(als=1, recent=0, popularity=0, content=0, new_item_slots=0)
    rows = []
    for als_cfg in als_grid(cfg):
        recs = score_holdout(ctx, valid, als_cfg, grid, t.k)
        ndcg = qm.ranking_metrics(recs, valid.relevant, valid.users, [t.k], t.k)
        ndcg = ndcg.filter((F.col("segment") == qm.SEGMENT_ALL) & (F.col("metric") == "ndcg")).toPandas()
        recs.unpersist()
        settings = {"rank": als_cfg.rank, "reg_param": als_cfg.reg_param, "alpha": als_cfg.alpha,
                    "max_iter": als_cfg.max_iter}
        for _, m in ndcg.iterrows():
            rows.append({**settings, "strategy": ALS if m[S.STRATEGY] == ALS else HYBRID,
                         **grid[m[S.STRATEGY]].__dict__, f"ndcg@{t.k}": m["value"]})
        best = max(r[f"ndcg@{t.k}"] for r in rows[-len(ndcg):])
        als_only = next(r[f"ndcg@{t.k}"] for r in rows[-len(ndcg):] if r["strategy"] == ALS)
        log.info("trial %s: ALS ndcg@%d %.4f, best blend %.4f", settings, t.k, als_only, best)
    valid.release()
    return choose(pd.DataFrame(rows), cfg)
