"""The recommend step, the publish: every user's top-N for the run date in one atomic commit of
the `recommendations` partition (it runs after the gate, so only vetted nights are published), once
the guardrails (steps/guardrails.py) have compared the night with the last published one."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from hybridrec import __version__
from hybridrec import schema as S
from hybridrec.config import Config, positive_min_weight
from hybridrec.io import tracking
from hybridrec.scoring.arrow import with_hybrid_recommendations
from hybridrec.scoring.index import popularity_top_n
from hybridrec.scoring.params import ScoringParams, blend_from_config, scoring_params
from hybridrec.scoring.rules import RULES, ruled_popularity
from hybridrec.sources.block_list import read_user_blocks
from hybridrec.steps.context import RunContext, scoring_inputs
from hybridrec.steps.evaluation import make_holdout
from hybridrec.steps.guardrails import guard_night
from hybridrec.steps.ranking import RankerOutcome, ranker_params, read_ranker, train_ranker, write_ranker
from hybridrec.steps.runs import StepRecord
from hybridrec.transforms.explain import with_explanations
from hybridrec.transforms.features import with_popularity_recommendations, with_run_columns
from hybridrec.transforms.variants import CONTROL, with_variant

log = logging.getLogger(__name__)


def model_version(cfg: Config, ranker_hash: str | None = None, mlflow_run: str | None = None) -> str:
    """Package version + a hash of every setting that changes what is scored (+ the ranker's hash,
    + the night's MLflow run)."""
    scoring = {"als": cfg.als.model_dump(), "recommend": cfg.recommend.model_dump(), "ranker": cfg.ranker.model_dump(),
               "rules": cfg.rules.model_dump(), "model": cfg.embedding.model}
    digest = hashlib.sha256(json.dumps(scoring, sort_keys=True).encode()).hexdigest()[:10]
    return (f"{__version__}+{digest}" + (f".ranker-{ranker_hash}" if ranker_hash else ".blend")
            + (f".mlflow-{mlflow_run}" if mlflow_run else ""))


def night_ranker(ctx: RunContext, interactions) -> RankerOutcome:
    """The ranker the gate stored for this night; trained (and stored) here when the gate did not run."""
    stored = read_ranker(ctx)
    if not ctx.cfg.ranker.enabled:
        outcome = RankerOutcome(None, "ranker.enabled is false: the linear blend is the hybrid")
    elif stored is not None:
        return stored
    else:
        holdout = make_holdout(interactions, ctx.cfg)
        outcome = train_ranker(ctx, holdout)
        holdout.release()
    if stored is None:  # every published night says which hybrid ran
        write_ranker(ctx, outcome)
    return outcome


def arm_params(arm: Config, ctx: RunContext, ranker: RankerOutcome, rules) -> ScoringParams:
    """Scoring parameters of one arm of the experiment (its list settings; the night's models)."""
    blend = dataclasses.replace(blend_from_config(arm.recommend),
                                ranked=ranker.model is not None and arm.ranker.enabled)
    params = scoring_params(arm.recommend, positive_min_weight(arm), ctx.ds, blends=((S.HYBRID, blend),))
    return dataclasses.replace(ranker_params(params, arm, ranker.model if blend.ranked else None), rules=rules)


def _scored(histories: DataFrame, inputs, params: ScoringParams) -> DataFrame:
    """The hybrid's lists. The ranker learned from users with history only, so users with words but no
    history (null hist_pos) are scored by the linear blend: on the synthetic set their NDCG@10 was 0.3600
    with the blend against 0.3013 with the ranker (docs/benchmarks.md, 2026-12-04, ninth session)."""
    if not params.blends[0][1].ranked:
        return with_hybrid_recommendations(histories, inputs.index_bc, params)
    blend = dataclasses.replace(params, blends=tuple((name, dataclasses.replace(b, ranked=False))
                                                     for name, b in params.blends))
    with_history = F.col(S.HIST_POS).isNotNull()
    return (with_hybrid_recommendations(histories.where(with_history), inputs.index_bc, params)
            .unionByName(with_hybrid_recommendations(histories.where(~with_history), inputs.index_bc, blend)))


def _words_only_per_arm(histories: DataFrame) -> dict[str, int]:
    return {r[S.VARIANT]: r["count"] for r in
            histories.where(F.col(S.HIST_POS).isNull()).groupBy(S.VARIANT).count().collect()}


def recommend_step(ctx: RunContext, record: StepRecord) -> None:
    mlflow_run = None
    if ctx.cfg.tracking.enabled and tracking.tracking_uri(ctx.cfg):
        mlflow_run = tracking.start_night(ctx.cfg, ctx.ds, ctx.run_id)
    elif ctx.cfg.tracking.enabled:
        log.warning("not tracked: the lakehouse is on object storage and tracking.uri is empty (set a server)")
    try:
        ranker = _publish(ctx, record, mlflow_run)
    except BaseException:
        if mlflow_run:
            tracking.fail_night(ctx.cfg, mlflow_run)
        raise
    if mlflow_run:
        _track(ctx, record, ranker, mlflow_run)


def _publish(ctx: RunContext, record: StepRecord, mlflow_run: str | None) -> RankerOutcome:
    cfg = ctx.cfg
    interactions = ctx.read(S.INTERACTIONS).persist()  # used for popularity, histories and new users
    ranker = night_ranker(ctx, interactions)
    arms = cfg.arms()
    control = arm_params(cfg, ctx, ranker, None)
    blocks = read_user_blocks(ctx.spark, cfg.rules)
    inputs = scoring_inputs(ctx, interactions=interactions, items=ctx.read(S.ITEMS),
                            item_factors=ctx.read(S.ITEM_FACTORS), user_factors=ctx.read(S.USER_FACTORS),
                            params=control, rules=cfg.rules, user_blocks=blocks,
                            neighbours=ranker.model is not None and any(a.ranker.enabled for a in arms.values()),
                            text_only_users=True)
    salt, shares = cfg.experiment.salt, [(v.name, v.share) for v in cfg.experiment.variants]
    users = with_variant(ctx.read(S.USERS).select(S.USER_ID), salt, shares)
    histories = inputs.histories.join(users, S.USER_ID) if shares else inputs.histories.withColumn(
        S.VARIANT, F.lit(CONTROL))
    # Users neither with history nor with words of their own (scored above from their text) get popularity.
    without_history = users.join(inputs.histories.select(S.USER_ID), S.USER_ID, "left_anti")
    parts, versions, words_only = [], {}, None
    for name, arm in arms.items():  # every arm scored from the same broadcast index, one commit for all
        params = arm_params(arm, ctx, ranker, inputs.rules)
        mine = histories.where(F.col(S.VARIANT) == name).drop(S.VARIANT)
        if params.blends[0][1].ranked:  # words-only users the blend scores instead: one count for all arms
            words_only = words_only if words_only is not None else _words_only_per_arm(histories)
            record.row_counts["words_only_users"] = record.row_counts.get("words_only_users", 0) \
                + words_only.get(name, 0)
        hybrid = _scored(mine, inputs, params)
        pool = popularity_top_n(inputs.index, params.top_n + cfg.rules.extra_candidates)
        top_popular = ctx.spark.createDataFrame(ruled_popularity(pool, inputs.index.item_ids, params.top_n, inputs.rules),
                                                "rank int, item_id string, score double, removed_by string")
        popular = with_popularity_recommendations(without_history.where(F.col(S.VARIANT) == name), top_popular,
                                                  top_n=params.top_n, blocks_df=blocks)
        versions[name] = model_version(arm, ranker.model_hash if params.blends[0][1].ranked else None, mlflow_run)
        parts.append(hybrid.unionByName(popular).withColumns(
            {S.VARIANT: F.lit(name), S.MODEL_VERSION: F.lit(versions[name])}))
    scored = functools.reduce(DataFrame.unionByName, parts)
    removed = {}
    if inputs.rules is not None:  # some rule can remove rows: counted per rule, then published (scored once)
        scored = scored.persist()
        removed = {r[S.REMOVED_BY]: r["count"] for r in
                   scored.where(F.col(S.REMOVED_BY).isNotNull()).groupBy(S.REMOVED_BY).count().collect()}
    explained = with_explanations(scored, ctx.read(S.ITEMS), categories=cfg.rules.categories)
    rows = with_run_columns(explained, run_id=ctx.run_id, ds=ctx.ds)
    forced = warned = ""
    if cfg.guardrails.enabled:
        rows = rows.persist()  # checked, then written: scored once
        rows.count()  # scored here, so the guardrails' time (logged) is theirs alone
        forced, warned = guard_night(ctx, record, interactions, rows)
    record.row_counts["recommendations"] = ctx.write(rows, S.RECOMMENDATIONS)
    rows.unpersist()
    scored.unpersist()
    for rule in RULES:  # rows each business rule took out of the lists
        record.row_counts[f"removed_{rule}"] = int(removed.get(rule, 0))
    record.row_counts["items_without_factors"] = int((~inputs.index.has_factors).sum())
    record.row_counts["items_without_embedding"] = int((~inputs.index.has_embedding).sum())
    ranked = control.blends[0][1].ranked
    record.row_counts["ranker"] = int(ranked)
    record.message = forced + ("published with the ranker: " if ranked else "published with the linear blend: ") \
        + ranker.message + warned + (f" Experiment arms: {versions}." if shares else "")
    inputs.release()
    interactions.unpersist()
    return ranker


def _track(ctx: RunContext, record: StepRecord, ranker: RankerOutcome, mlflow_run: str) -> None:
    """The night's MLflow run: the gate's metrics for this run id, the publish's counts, the models."""
    metrics = ctx.read(S.METRICS, required=False)
    rows = [] if metrics is None else metrics.where(F.col(S.RUN_ID) == ctx.run_id).collect()
    values = {f"{r[S.STRATEGY]}.{r['segment']}.{r['metric']}_{r['k']}".replace(":", "_"): r["value"] for r in rows}
    values.update({f"rows.{k}": v for k, v in record.row_counts.items()})
    tracking.finish_night(
        ctx.cfg, mlflow_run, metrics=values, item_factors=ctx.read(S.ITEM_FACTORS).toPandas(),
        ranker_model=ranker.model.model if ranker.model is not None else None,
        tags={"hybridrec.embedding_model": ctx.cfg.embedding.model, "hybridrec.embedding_runtime": ctx.cfg.embedding.runtime,
              "hybridrec.ranker": ranker.model_hash or "none (linear blend)"})
    record.message += f" MLflow run {mlflow_run} ({tracking.tracking_uri(ctx.cfg)})."
