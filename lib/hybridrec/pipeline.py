"""The nightly steps. Reads and writes happen here (through hybridrec.io); logic lives in the
transform modules. Each step reads its inputs from the lakehouse for run date ds, so any step can
be re-run alone, and every write replaces or appends in one Delta commit tagged with the run id.
"""

from __future__ import annotations

import logging

from pyspark.errors import PythonException
from pyspark.sql import functions as F

from hybridrec import embed, ingest, recommend
from hybridrec import schema as S
from hybridrec.context import RunContext, fit_factors, model_version, positive_min_weight, scoring_inputs
from hybridrec.datasets import load_raw_inputs
from hybridrec.errors import EmbeddingError, ReconciliationError
from hybridrec.offline import gate_step
from hybridrec.runs import StepRecord, recorded_step

log = logging.getLogger(__name__)

STEPS = ("ingest", "embed_items", "train_als", "gate", "recommend", "summary")


def ingest_step(ctx: RunContext, record: StepRecord) -> None:
    cfg, ds = ctx.cfg, ctx.ds
    raw = load_raw_inputs(ctx.spark, cfg)
    items_classified = ingest.with_item_reason(raw.items, max_text_chars=cfg.ingest.max_text_chars).persist()
    items_kept = ingest.filter_kept(items_classified, S.ITEMS, ds)
    interactions = ingest.with_interaction_reason(
        raw.interactions, ds=ds, timestamp_unit=raw.timestamp_unit,
        event_weights=cfg.ingest.event_weights, max_weight=cfg.ingest.max_weight,
    )
    interactions = ingest.with_catalogue_reason(interactions, items_kept)
    interactions_classified = ingest.with_duplicate_event_reason(
        interactions, window_seconds=cfg.ingest.duplicate_window_seconds).persist()
    interactions_kept = ingest.filter_kept(interactions_classified, S.INTERACTIONS, ds)
    quarantined = ingest.filter_quarantined(items_classified, entity="items", run_id=ctx.run_id, ds=ds).unionByName(
        ingest.filter_quarantined(interactions_classified, entity="interactions", run_id=ctx.run_id, ds=ds))
    users = ingest.with_users(interactions_kept, raw.users).withColumn(S.DS, F.lit(ds))

    counts: dict[str, int] = {}
    for entity, classified, raw_df in (("items", items_classified, raw.items),
                                       ("interactions", interactions_classified, raw.interactions)):
        counts[f"{entity}_read"] = raw_df.count()
        counts[f"{entity}_quarantined"] = 0
        for row in ingest.count_by_source(classified).collect():
            log.info("%s from %s: read %d, kept %d, quarantined %d",
                     entity, row[S.SOURCE], row["read"], row["kept"], row["quarantined"])
            for key in ("read", "kept", "quarantined"):  # per source file, for the audit trail
                counts[f"{entity}_{key}:{row[S.SOURCE]}"] = row[key]
            counts[f"{entity}_quarantined"] += row["quarantined"]
            if entity == "items":
                counts[ingest.TEXT_TRUNCATED] = counts.get(ingest.TEXT_TRUNCATED, 0) + row[ingest.TEXT_TRUNCATED]
    counts["items_kept"] = ctx.write(items_kept, S.ITEMS)
    counts["interactions_kept"] = ctx.write(interactions_kept, S.INTERACTIONS)
    counts["quarantined"] = ctx.write(quarantined, S.QUARANTINE)
    counts["users"] = ctx.write(users, S.USERS)
    items_classified.unpersist()
    interactions_classified.unpersist()
    record.row_counts.update(counts)
    if counts.get(ingest.TEXT_TRUNCATED):
        log.warning("%d item texts were longer than ingest.max_text_chars=%d and were cut",
                    counts[ingest.TEXT_TRUNCATED], cfg.ingest.max_text_chars)
    for entity in ("items", "interactions"):
        kept, bad, read = counts[f"{entity}_kept"], counts[f"{entity}_quarantined"], counts[f"{entity}_read"]
        if kept + bad != read:
            raise ReconciliationError(f"{entity}: read {read} != kept {kept} + quarantined {bad}")
    if counts["quarantined"] != counts["items_quarantined"] + counts["interactions_quarantined"]:
        raise ReconciliationError(
            f"quarantine table got {counts['quarantined']} rows, expected "
            f"{counts['items_quarantined']} + {counts['interactions_quarantined']}")


def embed_items_step(ctx: RunContext, record: StepRecord) -> None:
    cfg = ctx.cfg.embedding
    items = ctx.read(S.ITEMS)
    cached = ctx.read(S.ITEM_EMBEDDINGS, required=False)
    todo = embed.filter_needs_embedding(items, cached, model=cfg.model).persist()
    n_todo = todo.count()
    record.row_counts.update({"items": items.count(), "embedded": n_todo})
    if n_todo == 0:
        log.info("embed_items: every item already has an embedding for %s", cfg.model)
        return
    # Range partitions by text length: similar lengths share Arrow batches, so padding is small.
    # Descending, so the slowest (longest) partitions are scheduled first and none straggles last.
    partitions = max(1, min(n_todo // 64 + 1, ctx.spark.sparkContext.defaultParallelism * 8))
    todo = todo.repartitionByRange(partitions, F.length(S.TEXT).desc())
    embedded = embed.with_embedding(todo, model_path=embed.resolve_model_path(cfg.model_path),
                                    batch_size=cfg.batch_size, max_length=cfg.max_length, runtime=cfg.runtime,
                                    onnx_path=cfg.onnx_path)
    rows = embedded.select(S.ITEM_ID, S.TEXT_HASH, F.lit(cfg.model).alias(S.MODEL), S.EMBEDDING,
                           F.lit(ctx.ds).alias(S.DS))
    try:
        ctx.write(rows, S.ITEM_EMBEDDINGS)
    except PythonException as exc:
        message = embed.worker_error(exc)
        if message is None:
            raise
        raise EmbeddingError(f"step embed_items: {message}; nothing was written") from exc
    finally:
        todo.unpersist()


def train_als_step(ctx: RunContext, record: StepRecord) -> None:
    user_factors, item_factors = fit_factors(ctx.read(S.INTERACTIONS), ctx.cfg.als, ctx.ds)
    record.row_counts["user_factors"] = ctx.write(user_factors, S.USER_FACTORS)
    record.row_counts["item_factors"] = ctx.write(item_factors, S.ITEM_FACTORS)
    user_factors.unpersist()
    item_factors.unpersist()


def recommend_step(ctx: RunContext, record: StepRecord) -> None:
    cfg = ctx.cfg
    params = recommend.scoring_params(cfg.recommend, positive_min_weight(cfg), ctx.ds)
    interactions = ctx.read(S.INTERACTIONS).persist()  # used for popularity, histories and new users
    inputs = scoring_inputs(ctx, interactions=interactions, items=ctx.read(S.ITEMS),
                            item_factors=ctx.read(S.ITEM_FACTORS), user_factors=ctx.read(S.USER_FACTORS),
                            params=params)
    hybrid = recommend.with_hybrid_recommendations(inputs.histories, inputs.index_bc, params)
    users_without_history = ctx.read(S.USERS).join(interactions.select(S.USER_ID).distinct(), S.USER_ID, "left_anti")
    top_popular = ctx.spark.createDataFrame(recommend.popularity_top_n(inputs.index, params.top_n))
    popular = recommend.with_popularity_recommendations(users_without_history, top_popular)
    rows = recommend.with_run_columns(hybrid.unionByName(popular), model_version=model_version(cfg),
                                      run_id=ctx.run_id, ds=ctx.ds)
    record.row_counts["recommendations"] = ctx.write(rows, S.RECOMMENDATIONS)
    record.row_counts["items_without_factors"] = int((~inputs.index.has_factors).sum())
    record.row_counts["items_without_embedding"] = int((~inputs.index.has_embedding).sum())
    inputs.release()
    interactions.unpersist()


def summary_step(ctx: RunContext, record: StepRecord) -> None:
    from hybridrec.summary import print_summary
    print_summary(ctx)


STEP_FUNCTIONS = {
    "ingest": ingest_step,
    "embed_items": embed_items_step,
    "train_als": train_als_step,
    "gate": gate_step,
    "recommend": recommend_step,
    "summary": summary_step,
}


def run_step(ctx: RunContext, step: str, function=None) -> StepRecord:
    """One step under the run's id: claimed and recorded in `runs` (see hybridrec.runs)."""
    with recorded_step(ctx.spark, ctx.root, ctx.run_id, ctx.ds, step, database=ctx.database) as record:
        ctx.records.append(record)
        ctx.step = record
        try:
            (function or STEP_FUNCTIONS[step])(ctx, record)
        finally:
            ctx.step = None
    return record


def run_steps(ctx: RunContext, steps: tuple[str, ...] = STEPS) -> None:
    """Run `steps` in order under one run id; stops at the first failure (recorded in `runs`)."""
    for step in steps:
        run_step(ctx, step)
