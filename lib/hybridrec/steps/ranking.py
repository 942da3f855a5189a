"""The night's learned ranker: trained on a validation split carved from the training part of a
holdout (so the gate measures it on test events it never saw), stored in the `rankers` table, and
read back by the recommend step, which publishes with exactly the model the gate measured.

Training: ALS is fitted on the validation split's training part, every validation user gets the
ranker's candidates and features (scoring.candidates, in the same Arrow path as scoring), a
candidate is labelled 1 when it is one of the user's validation positives, and LightGBM learns on
the driver (scoring.ranker). Too few validation users with a relevant candidate: the linear blend
is the night's hybrid, and `rankers` says why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.config import Config, positive_min_weight
from hybridrec.errors import EvaluationError
from hybridrec.scoring.arrow import with_candidate_features
from hybridrec.scoring.params import ScoringParams, scoring_params
from hybridrec.scoring.ranker import RankerModel, fit_ranker
from hybridrec.steps.context import RunContext, scoring_inputs
from hybridrec.transforms.als import fit_factors

log = logging.getLogger(__name__)
TRAINED, FALLBACK = "trained", "fallback"


@dataclass(frozen=True)
class RankerOutcome:
    model: RankerModel | None     # None: the linear blend is the hybrid
    message: str

    @property
    def model_hash(self) -> str | None:
        return None if self.model is None else hashlib.sha256(self.model.model.encode()).hexdigest()[:10]


def ranker_params(params: ScoringParams, cfg: Config, model: RankerModel | None) -> ScoringParams:
    return dataclasses.replace(params, candidates_per_source=cfg.ranker.candidates_per_source,
                               new_item_candidates=cfg.ranker.new_item_candidates, ranker=model)


def labelled_candidates(ctx: RunContext, split) -> pd.DataFrame:
    """user_id, item_id, is_new, features, label (1 = one of the user's relevant items) for every
    evaluated user of `split` (a Holdout), from ALS fitted on its training part."""
    cfg = ctx.cfg
    user_factors, item_factors = fit_factors(split.train, cfg.als, ctx.ds)
    params = dataclasses.replace(ranker_params(scoring_params(cfg.recommend, positive_min_weight(cfg), ctx.ds), cfg, None),
                                 explain=False, mark_new_items=False)
    inputs = scoring_inputs(ctx, interactions=split.train, items=ctx.read(S.ITEMS), item_factors=item_factors,
                            user_factors=user_factors, params=params, neighbours=True)
    histories = inputs.histories.join(split.users.select(S.USER_ID), S.USER_ID)
    labels = split.relevant.select(S.USER_ID, S.ITEM_ID, F.lit(1).alias("label"))
    rows = (with_candidate_features(histories, inputs.index_bc, params)
            .join(labels, [S.USER_ID, S.ITEM_ID], "left").toPandas())
    inputs.release()
    user_factors.unpersist()
    item_factors.unpersist()
    rows["label"] = rows["label"].fillna(0).astype(np.int32)
    return rows


def train_ranker(ctx: RunContext, holdout) -> RankerOutcome:
    """A ranker trained on the configured protocol's validation split of `holdout.train`."""
    from hybridrec.steps.evaluation import make_holdout  # evaluation imports this module

    cfg, r = ctx.cfg, ctx.cfg.ranker
    if not r.enabled:
        return RankerOutcome(None, "ranker.enabled is false: the linear blend is the hybrid")
    try:
        valid = make_holdout(holdout.train, cfg, max_users=r.max_train_users)
    except EvaluationError as exc:
        return RankerOutcome(None, f"no validation split to train the ranker on ({exc}): the linear blend is the hybrid")
    if valid.n_users < r.min_train_users:  # checked before fitting ALS: too few users to learn from at all
        valid.release()
        return RankerOutcome(None, f"{valid.n_users} validation users have a relevant item, ranker.min_train_users "
                                   f"is {r.min_train_users}: the linear blend is the hybrid")
    rows = labelled_candidates(ctx, valid)
    n_relevant = valid.n_relevant
    valid.release()
    label = rows["label"].to_numpy(np.int32)
    trainable = rows.loc[label > 0, S.USER_ID].nunique()
    if trainable < r.min_train_users:
        return RankerOutcome(None, f"{trainable} validation users have a relevant candidate, ranker.min_train_users "
                                   f"is {r.min_train_users}: the linear blend is the hybrid")
    codes = pd.factorize(rows[S.USER_ID])[0]
    model = fit_ranker(np.stack(rows["features"].to_numpy()), label, codes, rows["is_new"].to_numpy(bool),
                       top_n=cfg.recommend.top_n, k=cfg.gate.k, trees=r.trees, learning_rate=r.learning_rate,
                       leaves=r.leaves, min_leaf_rows=r.min_leaf_rows, seed=r.seed, models=r.models)
    model.metrics["candidate_recall"] = float(label.sum() / max(1, n_relevant))
    top = sorted(model.importances.items(), key=lambda kv: -kv[1])[:3]
    message = (f"trained on {len(rows)} candidates of {len(np.unique(codes))} validation users "
               f"({trainable} with a relevant one; candidate recall {model.metrics['candidate_recall']:.3f}), "
               f"{r.models} models of {model.metrics['trees']:.0f} trees; top features "
               + ", ".join(f"{f} {v:.2f}" for f, v in top))
    log.info("ranker %s", message)
    return RankerOutcome(model, message)


def write_ranker(ctx: RunContext, outcome: RankerOutcome) -> None:
    m = outcome.model
    row = {S.RUN_ID: ctx.run_id, "status": TRAINED if m else FALLBACK, "message": outcome.message,
           S.MODEL: m.model if m else None, "model_hash": outcome.model_hash,
           "new_item_bar": (m.new_item_bar if np.isfinite(m.new_item_bar) else None) if m else None,
           "importances": m.importances if m else {}, "metrics": m.metrics if m else {}, S.DS: ctx.ds}
    ctx.write(ctx.spark.createDataFrame([row], S.RANKERS.schema), S.RANKERS)


def read_ranker(ctx: RunContext) -> RankerOutcome | None:
    """The ranker stored for this night; None when no step stored one."""
    row = ctx.read(S.RANKERS, required=False).first()
    if row is None:
        return None
    if row["status"] != TRAINED:
        return RankerOutcome(None, row["message"])
    bar = row["new_item_bar"]
    model = RankerModel(model=row[S.MODEL], new_item_bar=float("inf") if bar is None else bar,
                        importances=dict(row["importances"]), metrics=dict(row["metrics"]))
    return RankerOutcome(model, row["message"])
