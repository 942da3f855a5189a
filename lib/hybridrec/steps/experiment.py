"""`hybridrec experiment`: the experiment's arms compared on one holdout of the configured protocol
(the night's models refitted on its training part, as `evaluate` does), each arm's hybrid scored
for every evaluated user, with bootstrap intervals (quality/experiment.py)."""

from __future__ import annotations

import dataclasses
import functools

import pandas as pd
from pyspark.sql import DataFrame

from hybridrec import schema as S
from hybridrec.quality import metrics as qm
from hybridrec.quality.experiment import experiment_table
from hybridrec.quality.gate import variant_strategy
from hybridrec.scoring.params import blend_from_config
from hybridrec.steps.context import RunContext
from hybridrec.steps.evaluation import make_holdout, score_holdout
from hybridrec.steps.ranking import train_ranker


def run_experiment(ctx: RunContext) -> pd.DataFrame:
    """One row per arm (control first): NDCG@k (the first evaluate.ks) of the arm's own lists (its
    top_n, blend, slots, retrieval, diversity), its difference to control and the 95% bootstrap
    interval of that difference over users."""
    cfg, k = ctx.cfg, ctx.cfg.evaluate.ks[0]
    holdout = make_holdout(ctx.read(S.INTERACTIONS), cfg)
    ranker = train_ranker(ctx, holdout)
    lists = []
    for name, arm in cfg.arms().items():  # each arm's settings in full: one scoring pass per arm
        blend = dataclasses.replace(blend_from_config(arm.recommend), ranked=ranker.model is not None and arm.ranker.enabled)
        lists.append(score_holdout(dataclasses.replace(ctx, cfg=arm), holdout, cfg.als, {variant_strategy(name): blend},
                                   arm.recommend.top_n, ranker.model))
    recs = functools.reduce(DataFrame.unionByName, lists)
    metric = f"ndcg_{k}"
    per_user = qm.per_user_ranking(recs, holdout.relevant, holdout.users, [k], cfg.evaluate.cold_k).select(
        S.STRATEGY, S.USER_ID, metric).toPandas()
    for part in lists:
        part.unpersist()
    holdout.release()
    table = experiment_table(per_user, metric, {name: variant_strategy(name) for name in cfg.arms()},
                             seed=cfg.evaluate.sample_seed)
    return table.assign(metric=f"ndcg@{k}", protocol=cfg.evaluate.protocol)
