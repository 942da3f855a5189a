"""Column names and the contract of every table the pipeline writes, defined once.

Each table is a `TableSpec`: Spark schema (with a comment per column), partition columns,
a description, and how the table changes per run (`write_mode`). The I/O layer refuses
to write a DataFrame whose columns or types differ from its spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pyspark.sql import types as T

USER_ID = "user_id"
ITEM_ID = "item_id"
EVENT_TS = "event_ts"
WEIGHT = "weight"
EVENT_TYPE = "event_type"
TITLE = "title"
DESCRIPTION = "description"
TAGS = "tags"
TEXT = "text"
TEXT_HASH = "text_hash"
SOURCE = "source"
DS = "ds"
RUN_ID = "run_id"
MODEL = "model"
EMBEDDING = "embedding"
FEATURES = "features"
RANK = "rank"
SCORE = "score"
ALS_SCORE = "als_score"
CONTENT_SCORE = "content_score"
REASON_ITEM_ID = "reason_item_id"
REMOVED_BY = "removed_by"
SIGNAL = "signal"
EXPLANATION = "explanation"
VARIANT = "variant"
AVAILABLE_FROM = "available_from"
AVAILABLE_TO = "available_to"
STRATEGY = "strategy"
MODEL_VERSION = "model_version"
REASON = "reason"
ENTITY = "entity"
RECORD = "record"

# Columns of intermediate frames (scoring inputs and outputs), not stored in any table.
ITEM_POS = "item_pos"
HIST_POS = "hist_pos"
HIST_WEIGHT = "hist_weight"
HIST_TS = "hist_ts"
TEXT_EMBEDDING = "text_embedding"  # a user's own words, embedded (users' text)
BLOCKED_POS = "blocked_pos"  # positions of the items on a user's own block list (business rules)
POPULARITY = "popularity"
FIRST_EVENT_S = "first_event_s"

# Strategy names in `recommendations.strategy` and `metrics.strategy`.
HYBRID = "hybrid"
NEW_ITEM = "new_item"
POPULARITY_STRATEGY = "popularity"
ALS_STRATEGY = "als"
CONTENT_STRATEGY = "content"
EASE_STRATEGY = "ease"  # a reference `evaluate` reports (closed-form item-item); never published
BLEND_STRATEGY = "blend"  # the linear blend, reported next to the ranker when the ranker is the hybrid

WriteMode = Literal["replace_partition", "append", "merge"]


def day_end(ds: date) -> datetime:
    """First instant after run date `ds` (UTC): later events are in the future for that night, and
    recency is measured from here."""
    return datetime.combine(ds + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def _field(name: str, dtype: T.DataType, comment: str, nullable: bool = True) -> T.StructField:
    return T.StructField(name, dtype, nullable, metadata={"comment": comment})


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: T.StructType
    partition_by: tuple[str, ...]
    write_mode: WriteMode
    description: str
    merge_keys: tuple[str, ...] = ()   # write_mode "merge": rows whose key is in the table are not inserted

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.schema.fields]


_DS_FIELD = _field(DS, T.DateType(), "Run date (partition); the night this row belongs to.", False)

INTERACTIONS = TableSpec(
    name="interactions",
    schema=T.StructType([
        _field(USER_ID, T.StringType(), "User id, trimmed.", False),
        _field(ITEM_ID, T.StringType(), "Item id, trimmed; always present in `items` for the same ds.", False),
        _field(EVENT_TS, T.TimestampType(), "When the event happened (UTC); never after the end of ds.", False),
        _field(WEIGHT, T.DoubleType(), "Positive confidence weight (explicit, or mapped from event_type).", False),
        _field(EVENT_TYPE, T.StringType(), "Event type as read, null when the source gives a weight."),
        _field(SOURCE, T.StringType(), "File the row was read from.", False),
        _DS_FIELD,
    ]),
    partition_by=(DS,),
    write_mode="replace_partition",
    description="Clean, deduplicated interactions usable on run date ds (one snapshot per ds).",
)

ITEMS = TableSpec(
    name="items",
    schema=T.StructType([
        _field(ITEM_ID, T.StringType(), "Item id, trimmed, unique per ds.", False),
        _field(TITLE, T.StringType(), "Title as read (may be null)."),
        _field(DESCRIPTION, T.StringType(), "Description as read (may be null)."),
        _field(TAGS, T.ArrayType(T.StringType()), "Tags and categories, lower-cased, de-duplicated."),
        _field(TEXT, T.StringType(), "Text given to the embedding model: title. tags. description.", False),
        _field(TEXT_HASH, T.StringType(), "SHA-256 of `text`; embeddings are reused while it is unchanged.", False),
        _field(SOURCE, T.StringType(), "File the row was read from.", False),
        _DS_FIELD,
        # Added after the first release, so at the end: existing tables migrate with --migrate-schema.
        _field(AVAILABLE_FROM, T.TimestampType(), "Recommended only from this instant on (null = no start)."),
        _field(AVAILABLE_TO, T.TimestampType(), "Recommended only before this instant (null = no end)."),
    ]),
    partition_by=(DS,),
    write_mode="replace_partition",
    description="Catalogue snapshot for run date ds with the text used for embeddings.",
)

QUARANTINE = TableSpec(
    name="quarantine",
    schema=T.StructType([
        _field(ENTITY, T.StringType(), "Which input the row came from: interactions or items.", False),
        _field(SOURCE, T.StringType(), "File the row was read from.", False),
        _field(REASON, T.StringType(), "Reason code, e.g. null_user_id, bad_event_ts, duplicate_event.", False),
        _field(RECORD, T.StringType(), "The row as read, as JSON.", False),
        _field(RUN_ID, T.StringType(), "Run that quarantined the row.", False),
        _DS_FIELD,
    ]),
    partition_by=(DS,),
    write_mode="replace_partition",
    description="Input rows that could not be used, with the reason; read = kept + quarantined per ds.",
)

ITEM_EMBEDDINGS = TableSpec(
    name="item_embeddings",
    schema=T.StructType([
        _field(ITEM_ID, T.StringType(), "Item id.", False),
        _field(TEXT_HASH, T.StringType(), "SHA-256 of the text that was embedded.", False),
        _field(MODEL, T.StringType(), "Embedding model name.", False),
        _field(EMBEDDING, T.ArrayType(T.FloatType(), False), "L2-normalised sentence embedding.", False),
        _field(DS, T.DateType(), "Run date that computed this embedding.", False),
    ]),
    partition_by=(),
    write_mode="merge",
    description="Embedding cache keyed by (item_id, text_hash, model); new keys are merged in, rows never rewritten.",
    merge_keys=(ITEM_ID, TEXT_HASH, MODEL),
)


USERS = TableSpec(
    name="users",
    schema=T.StructType([
        _field(USER_ID, T.StringType(), "User id: every user with kept interactions, plus roster users.", False),
        _DS_FIELD,
        # Added after the first release, so at the end: existing tables migrate with --migrate-schema.
        _field(TEXT, T.StringType(), "The user's own words (roster fields ingest.user_text_fields, joined); "
               "null when none. Embedded like items: the start of the user's content profile."),
    ]),
    partition_by=(DS,),
    write_mode="replace_partition",
    description="Users known on run date ds; those without interactions get popularity lists, or lists from "
                "their own words when they wrote some.",
)


def _factors(entity_col: str, entity: str) -> TableSpec:
    return TableSpec(
        name=f"{entity}_factors",
        schema=T.StructType([
            _field(entity_col, T.StringType(), f"{entity.capitalize()} id.", False),
            _field(FEATURES, T.ArrayType(T.FloatType(), False), "ALS latent factors.", False),
            _DS_FIELD,
        ]),
        partition_by=(DS,),
        write_mode="replace_partition",
        description=f"ALS {entity} factors trained on run date ds.",
    )


USER_FACTORS = _factors(USER_ID, "user")
ITEM_FACTORS = _factors(ITEM_ID, "item")

RECOMMENDATIONS = TableSpec(
    name="recommendations",
    schema=T.StructType([
        _field(USER_ID, T.StringType(), "User id.", False),
        _field(RANK, T.IntegerType(), "1 = best.", False),
        _field(ITEM_ID, T.StringType(), "Recommended item; never one the user already interacted with.", False),
        _field(SCORE, T.DoubleType(), "Ranker score (or blended per-user z-score when the blend ran); comparable "
               "within one user's list and strategy.", False),
        _field(ALS_SCORE, T.DoubleType(), "Raw ALS dot product; null for items without ALS factors."),
        _field(CONTENT_SCORE, T.DoubleType(), "Cosine of centred item embedding to the user's profile; null without one."),
        _field(REASON_ITEM_ID, T.StringType(), "History item most similar to the recommendation (null for popularity)."),
        _field(STRATEGY, T.StringType(), "hybrid; new_item for items without interactions (placed by the ranker past its bar); "
               "popularity for users without history.", False),
        _field(MODEL_VERSION, T.StringType(), "Package version + hash of the scoring config.", False),
        _field(RUN_ID, T.StringType(), "Run that produced the row.", False),
        _DS_FIELD,
        # Added after the first release, so at the end: existing tables migrate with --migrate-schema.
        _field(EXPLANATION, T.StringType(), "Why the row is there, from the signal that ranked it, e.g. "
               "'because you liked X', 'popular now in comedy', 'new: similar to Y'."),
        _field(VARIANT, T.StringType(), "Experiment arm of the user: control, or a variant of [experiment] "
               "(stable per user: hash of salt and user_id)."),
    ]),
    partition_by=(DS,),
    write_mode="replace_partition",
    description="Top-N recommendations per user per run date; a re-run replaces its ds.",
)

# Top-N rows as scoring produces them: the `recommendations` contract without the run columns and the
# explanation, plus signal (the source that did most to rank the row: als, recent, cooc, content,
# popularity; the explanation is written from it) and removed_by (the business rule that took the row
# out of the list, null = published; removed rows are counted in `runs`, never written).
SCORED_SCHEMA = T.StructType([
    T.StructField(USER_ID, T.StringType(), False),
    T.StructField(RANK, T.IntegerType(), False),
    T.StructField(ITEM_ID, T.StringType(), False),
    T.StructField(SCORE, T.DoubleType(), False),
    T.StructField(ALS_SCORE, T.DoubleType(), True),
    T.StructField(CONTENT_SCORE, T.DoubleType(), True),
    T.StructField(REASON_ITEM_ID, T.StringType(), True),
    T.StructField(STRATEGY, T.StringType(), False),
    T.StructField(SIGNAL, T.StringType(), True),
    T.StructField(REMOVED_BY, T.StringType(), True),
])

RUNS = TableSpec(
    name="runs",
    schema=T.StructType([
        _field(RUN_ID, T.StringType(), "Run id (one per invocation).", False),
        _field(DS, T.DateType(), "Run date.", False),
        _field("step", T.StringType(), "Pipeline step.", False),
        _field("started_at", T.TimestampType(), "Wall-clock start (UTC).", False),
        _field("ended_at", T.TimestampType(), "Wall-clock end (UTC); equals started_at on the running row.", False),
        _field("status", T.StringType(), "running (written when the step starts), then succeeded or failed; a "
               "running row without a later row is a step that was killed.", False),
        _field("row_counts", T.MapType(T.StringType(), T.LongType()), "Counts the step produced."),
        _field("message", T.StringType(), "Error when failed; otherwise a note (e.g. the quality gate result)."),
    ]),
    partition_by=(DS,),
    write_mode="append",
    description="Two rows per step per run (running, then succeeded or failed): timing, status and row counts.",
)

METRICS = TableSpec(
    name="metrics",
    schema=T.StructType([
        _field(DS, T.DateType(), "Run date the evaluation belongs to (partition).", False),
        _field(RUN_ID, T.StringType(), "Run that evaluated; a ds evaluated twice has two run ids.", False),
        _field(STRATEGY, T.StringType(),
               "popularity, als, content, hybrid (the ranker, or the blend when it fell back), blend (the "
               "linear blend, when the ranker is the hybrid); ease (the EASE reference).", False),
        _field("segment", T.StringType(), "all, light_users (few training events) or cold_items.", False),
        _field("metric", T.StringType(), "precision, recall, ndcg, map, hit_rate, coverage, novelty, diversity, users.",
               False),
        _field("k", T.IntegerType(), "List cut-off the metric is measured at.", False),
        _field("value", T.DoubleType(), "Metric value, averaged over evaluated users where per-user.", False),
    ]),
    partition_by=(DS,),
    write_mode="append",
    description="Offline evaluation on a holdout of each night's interactions, one row per strategy/segment/metric/k.",
)

RANKERS = TableSpec(
    name="rankers",
    schema=T.StructType([
        _field(RUN_ID, T.StringType(), "Run that trained it (the gate's, or recommend's when the gate is off).", False),
        _field("status", T.StringType(), "trained: the ranker is the night's hybrid; fallback: the linear blend is.",
               False),
        _field("message", T.StringType(), "Why the blend ran instead (fallback), or what the ranker learned from.",
               False),
        _field(MODEL, T.StringType(), "LightGBM text model (null on fallback)."),
        _field("model_hash", T.StringType(), "SHA-256 prefix of `model`; part of recommendations.model_version."),
        _field("new_item_bar", T.DoubleType(), "Ranker score a new item must reach to enter a list (null: none may)."),
        _field("importances", T.MapType(T.StringType(), T.DoubleType()), "Feature -> share of the total split gain."),
        _field("metrics", T.MapType(T.StringType(), T.DoubleType()),
               "Training figures: rows, users, trees, validation NDCG."),
        _DS_FIELD,
    ]),
    partition_by=(DS,),
    write_mode="replace_partition",
    description="The night's learned ranker (or why the linear blend ran instead), trained on a validation split "
                "carved from the training part of the gate's holdout; recommend publishes with it.",
)

DATA_QUALITY = TableSpec(
    name="data_quality",
    schema=T.StructType([
        _field(DS, T.DateType(), "Run date checked (partition).", False),
        _field(RUN_ID, T.StringType(), "Run that checked it (the recommend step, before publishing).", False),
        _field("check", T.StringType(), "interactions, users, items, new_item_share, users_with_recommendations "
               "(night over night); items_quarantined_share, interactions_quarantined_share, score_psi (limits).",
               False),
        _field("value", T.DoubleType(), "Tonight's figure (null: score_psi without an earlier published night)."),
        _field("baseline", T.DoubleType(), "The last published night's figure (night-over-night checks)."),
        _field("baseline_ds", T.DateType(), "The last published night compared with (null: none)."),
        _field("lower_bound", T.DoubleType(), "Lowest value that passes (null: none)."),
        _field("upper_bound", T.DoubleType(), "Highest value that passes (null: none)."),
        _field("status", T.StringType(), "passed, warned, failed (night refused), forced (failed, published with "
               "--force) or no_baseline.", False),
        _field("message", T.StringType(), "The check in words, with the numbers.", False),
    ]),
    partition_by=(DS,),
    write_mode="replace_partition",
    description="Guardrails on each night's inputs and outputs, one row per check per night, written before "
                "publishing (also for a night they refused); bounds are in [guardrails].",
)

ENCODER_VERSIONS = TableSpec(
    name="encoder_versions",
    schema=T.StructType([
        _field(DS, T.DateType(), "Run date whose interactions trained it (partition).", False),
        _field(RUN_ID, T.StringType(), "The finetune run.", False),
        _field(MODEL, T.StringType(), "Name the version's vectors get in item_embeddings.model: <base>+<version>.",
               False),
        _field("base_model", T.StringType(), "The encoder it adapts (embedding.model).", False),
        _field("sequence", T.LongType(), "0, 1, 2, ... in the order versions were trained (the newest is highest).",
               False),
        _field("path", T.StringType(), "Folder with model.safetensors (LoRA merged), adapter/, training.json.", False),
        _field("passed", T.BooleanType(), "Beat the frozen encoder on validation: the nightly may use it.", False),
        _field("reason", T.StringType(), "Why it passed or not, with the numbers.", False),
        _field("params", T.StringType(), "Training settings ([finetune]) as JSON.", False),
        _field("metrics", T.MapType(T.StringType(), T.DoubleType()),
               "Pairs, loss, seconds, sizes, and validation metrics of frozen and tuned.", False),
    ]),
    partition_by=(DS,),
    write_mode="append",
    description="Every fine-tuned encoder version; the nightly embeds with the newest that passed (finetune.use_tuned).",
)

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (INTERACTIONS, ITEMS, USERS, QUARANTINE, ITEM_EMBEDDINGS, USER_FACTORS, ITEM_FACTORS, RECOMMENDATIONS,
              RANKERS, RUNS, METRICS, DATA_QUALITY, ENCODER_VERSIONS)
}


_CHANGES = {
    "replace_partition": "each run replaces its own `ds` partition in one commit (a re-run never duplicates)",
    "append": "each run appends; rows are never rewritten",
    "merge": "each run merges in rows whose key is new, in one commit; rows are never rewritten",
}


def contracts_markdown() -> str:
    """docs/tables.md: every table's contract, generated from the specs above (a test keeps it in sync)."""
    lines = ["# Table contracts", "",
             "Generated from `lib/hybridrec/schema.py` by `hybridrec.schema.contracts_markdown()`; the same",
             "descriptions are stored in each Delta table (table description, column comment metadata).", ""]
    for spec in TABLES.values():
        partition = ", ".join(f"`{c}`" for c in spec.partition_by) or "none"
        lines += [f"## `{spec.name}`", "", spec.description, "",
                  f"Partitioned by: {partition}. Per run: {_CHANGES[spec.write_mode]}.", "",
                  "| column | type | null | meaning |", "|---|---|---|---|"]
        lines += [f"| `{f.name}` | `{f.dataType.simpleString()}` | {'yes' if f.nullable else 'no'} | "
                  f"{f.metadata.get('comment', '')} |" for f in spec.schema.fields]
        lines.append("")
    return "\n".join(lines)
