"""The recommend step, the publish: every user's top-N for the run date in one atomic commit of
the `recommendations` partition (it runs after the gate, so only vetted nights are published)."""

from __future__ import annotations

import hashlib
import json

from hybridrec import __version__
from hybridrec import schema as S
from hybridrec.config import Config, positive_min_weight
from hybridrec.scoring.arrow import with_hybrid_recommendations
from hybridrec.scoring.index import popularity_top_n
from hybridrec.scoring.params import scoring_params
from hybridrec.steps.context import RunContext, scoring_inputs
from hybridrec.steps.runs import StepRecord
from hybridrec.transforms.features import with_popularity_recommendations, with_run_columns


def model_version(cfg: Config) -> str:
    """Package version + a hash of every setting that changes what is scored."""
    scoring = {"als": cfg.als.model_dump(), "recommend": cfg.recommend.model_dump(), "model": cfg.embedding.model}
    digest = hashlib.sha256(json.dumps(scoring, sort_keys=True).encode()).hexdigest()[:10]
    return f"{__version__}+{digest}"


def recommend_step(ctx: RunContext, record: StepRecord) -> None:
    cfg = ctx.cfg
    params = scoring_params(cfg.recommend, positive_min_weight(cfg), ctx.ds)
    interactions = ctx.read(S.INTERACTIONS).persist()  # used for popularity, histories and new users
    inputs = scoring_inputs(ctx, interactions=interactions, items=ctx.read(S.ITEMS),
                            item_factors=ctx.read(S.ITEM_FACTORS), user_factors=ctx.read(S.USER_FACTORS),
                            params=params)
    hybrid = with_hybrid_recommendations(inputs.histories, inputs.index_bc, params)
    users_without_history = ctx.read(S.USERS).join(interactions.select(S.USER_ID).distinct(), S.USER_ID, "left_anti")
    top_popular = ctx.spark.createDataFrame(popularity_top_n(inputs.index, params.top_n))
    popular = with_popularity_recommendations(users_without_history, top_popular)
    rows = with_run_columns(hybrid.unionByName(popular), model_version=model_version(cfg),
                                      run_id=ctx.run_id, ds=ctx.ds)
    record.row_counts["recommendations"] = ctx.write(rows, S.RECOMMENDATIONS)
    record.row_counts["items_without_factors"] = int((~inputs.index.has_factors).sum())
    record.row_counts["items_without_embedding"] = int((~inputs.index.has_embedding).sum())
    inputs.release()
    interactions.unpersist()
