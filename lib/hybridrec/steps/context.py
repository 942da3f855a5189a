"""The run context every step gets: session, config, run date, run id, and the only doorway to
the tables (read, write, append: through hybridrec.io, each write checked against the step's
claim). Also the scoring inputs that the recommend step and evaluation both build."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from pyspark import Broadcast
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.config import Config, RulesConfig
from hybridrec.embedding.encoder import resolve_model_path
from hybridrec.io.delta import append_rows, read_table, write_table
from hybridrec.scoring import ease
from hybridrec.scoring.index import ItemIndex, build_item_index
from hybridrec.scoring.params import ScoringParams
from hybridrec.scoring.rules import ItemRules, item_rules
from hybridrec.steps.runs import StepRecord, check_claim, new_run_id
from hybridrec.transforms.cooccurrence import with_item_neighbours
from hybridrec.transforms.embed import latest_embeddings, with_embedding
from hybridrec.transforms.features import with_histories, with_popularity
from hybridrec.transforms.rules import with_item_rule_columns, with_user_blocks


@dataclass
class RunContext:
    spark: SparkSession
    cfg: Config
    ds: date
    run_id: str = ""
    force: bool = False           # go on past a refusal: quarantine share, quality gate, guardrails (recorded in `runs`)
    records: list[StepRecord] = field(default_factory=list)
    step: StepRecord | None = None  # the step running now: its claim is checked before each write
    cache: dict = field(default_factory=dict)  # per-run results several steps share (users' text vectors)

    def __post_init__(self) -> None:
        self.run_id = self.run_id or new_run_id(self.ds)

    @property
    def root(self) -> str:
        return self.cfg.lakehouse.root

    @property
    def ds_str(self) -> str:
        return self.ds.isoformat()

    @property
    def database(self) -> str:
        return self.cfg.lakehouse.catalog_database

    def read(self, spec: S.TableSpec, *, required: bool = True) -> DataFrame:
        """The table; for a partitioned table only this run's ds."""
        return read_table(self.spark, self.root, spec, ds=self.ds if spec.partition_by else None, required=required)

    def _check_claim(self, spec: S.TableSpec) -> None:
        if self.step is not None:
            check_claim(self.spark, self.root, self.step, spec.name)

    def write(self, df: DataFrame, spec: S.TableSpec) -> int:
        """One commit to `spec`'s table (its ds partition when partitioned); rows written."""
        self._check_claim(spec)
        return write_table(df, self.root, spec, run_id=self.run_id,
                           ds=self.ds if spec.write_mode == "replace_partition" else None,
                           allow_schema_migration=self.cfg.lakehouse.allow_schema_migration,
                           database=self.database).rows

    def append(self, rows: list[dict], spec: S.TableSpec) -> None:
        """A few driver-side rows appended in one commit."""
        self._check_claim(spec)
        append_rows(self.spark, rows, self.root, spec, run_id=self.run_id, database=self.database)


@dataclass
class ScoringInputs:
    index: ItemIndex
    index_bc: Broadcast
    histories: DataFrame          # one row per user with history (see with_histories), blocked_pos with rules
    positions: DataFrame          # item_id, item_pos: the index's positions
    rules: ItemRules | None = None

    def release(self) -> None:
        self.index_bc.unpersist()


def user_text_vectors(ctx: RunContext) -> DataFrame | None:
    """user_id, text_embedding: the night's users' own words embedded by the night's encoder (persisted,
    once per run and encoder); None when no user wrote any (or the users table predates the column)."""
    key = ("user_texts", ctx.cfg.embedding.model)
    if key not in ctx.cache:
        ctx.cache[key] = _embedded_user_texts(ctx)
    return ctx.cache[key]


def _embedded_user_texts(ctx: RunContext) -> DataFrame | None:
    users = ctx.read(S.USERS, required=False)
    if users is None or S.TEXT not in users.columns:
        return None
    # with_embedding names the failing row by item_id: the user id goes in that column
    texts = users.where(F.col(S.TEXT).isNotNull()).select(F.col(S.USER_ID).alias(S.ITEM_ID), S.TEXT)
    e = ctx.cfg.embedding
    vectors = with_embedding(texts, model_path=resolve_model_path(e.model_path) if e.runtime != "hashing" else "",
                             batch_size=e.batch_size, max_length=e.max_length, runtime=e.runtime, onnx_path=e.onnx_path)
    out = vectors.select(F.col(S.ITEM_ID).alias(S.USER_ID), F.col(S.EMBEDDING).alias(S.TEXT_EMBEDDING)).persist()
    if out.count() == 0:  # one job: embeds the words, or finds there are none
        out.unpersist()
        return None
    return out


def _with_writers(index: ItemIndex, texts: DataFrame, user_factors: DataFrame, limit: int) -> ItemIndex:
    """The index with the users who have both words and ALS factors (at most `limit`, a stable hash
    sample): newcomers who write are matched against them (scoring/profiles.words_as_factors)."""
    writers = (texts.join(user_factors.where(F.col(S.FEATURES).isNotNull()).select(S.USER_ID, S.FEATURES), S.USER_ID)
               .orderBy(F.xxhash64(S.USER_ID), S.USER_ID).limit(limit).toPandas())
    if writers.empty:
        return index
    text = np.stack(writers[S.TEXT_EMBEDDING].to_numpy()).astype(np.float32)
    text /= np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-12)
    return dataclasses.replace(index, writer_text=text,
                               writer_factors=np.stack(writers[S.FEATURES].to_numpy()).astype(np.float32))


def scoring_inputs(ctx: RunContext, *, interactions: DataFrame, items: DataFrame, item_factors: DataFrame,
                   user_factors: DataFrame, params: ScoringParams, neighbours: bool = False,
                   rules: RulesConfig | None = None, user_blocks: DataFrame | None = None,
                   text_only_users: bool = False) -> ScoringInputs:
    """Collects the item side (one row per catalogue item) to the driver, broadcasts it once;
    `neighbours` adds the co-occurrence neighbours the ranker's candidates need; `rules` the
    business rules' item side, `user_blocks` (user_id, item_id) each user's block list. Users' own words
    (users.text) join the histories as text_embedding; `text_only_users` adds a row for each user who
    wrote some but has no history (scored from the words alone)."""
    embeddings = latest_embeddings(ctx.read(S.ITEM_EMBEDDINGS), items, model=ctx.cfg.embedding.model)
    popularity = with_popularity(interactions, as_of_epoch_s=params.as_of_epoch_s,
                                           half_life_days=params.recency_half_life_days)
    item_side = (items.select(S.ITEM_ID).join(item_factors.select(S.ITEM_ID, S.FEATURES), S.ITEM_ID, "left")
                 .join(embeddings, S.ITEM_ID, "left").join(popularity, S.ITEM_ID, "left"))
    if rules is not None:
        item_side = item_side.join(with_item_rule_columns(items, ds=ctx.ds, categories=rules.categories), S.ITEM_ID)
    items_pdf = item_side.toPandas()
    r, e = ctx.cfg.ranker, ctx.cfg.evaluate
    # Item-item neighbours: EASE's weights when the catalogue is small enough for its items x items
    # inverse on the driver (the stronger signal), co-occurrence cosine computed in Spark otherwise.
    small = neighbours and 0 < len(items_pdf) <= e.ease_max_items
    cosine = None
    if neighbours and not small:
        cosine = with_item_neighbours(interactions, positive_min_weight=params.positive_min_weight,
                                      max_user_items=r.cooc_max_user_items, max_neighbours=r.cooc_max_neighbours)
    index = build_item_index(items_pdf, mapping_ridge=ctx.cfg.recommend.mapping_ridge,
                             neighbours_pdf=None if cosine is None else cosine.toPandas())
    if small:
        pairs = interactions.select(S.USER_ID, S.ITEM_ID).distinct().toPandas()
        item_pos = pd.Index(index.item_ids).get_indexer(pairs[S.ITEM_ID])
        user_codes, _ = pd.factorize(pairs[S.USER_ID])
        known = item_pos >= 0
        index = dataclasses.replace(index, neighbours=ease.ease_neighbours(
            user_codes[known], item_pos[known], int(user_codes.max(initial=-1)) + 1, len(index.item_ids),
            e.ease_lambda, r.cooc_max_neighbours, r.dense_neighbours_max_items))
    positions = ctx.spark.createDataFrame(pd.DataFrame({
        S.ITEM_ID: index.item_ids, S.ITEM_POS: np.arange(len(index.item_ids), dtype=np.int64)}))
    histories = with_histories(interactions, positions, user_factors)
    texts = user_text_vectors(ctx) if params.text_prior_items > 0 else None
    if texts is not None:
        histories = histories.join(texts, S.USER_ID, "left")
        if text_only_users:
            newcomers = texts.join(histories.select(S.USER_ID), S.USER_ID, "left_anti")
            histories = histories.unionByName(newcomers, allowMissingColumns=True)  # null history = empty
    if texts is not None and params.text_user_neighbours > 0:
        index = _with_writers(index, texts, user_factors, ctx.cfg.recommend.text_users_max)
    item_side_rules = None
    if rules is not None:
        item_side_rules = item_rules(index.item_ids, items_pdf, blocked_items=rules.blocked_items,
                                     category_cap=rules.category_cap, extra_candidates=rules.extra_candidates)
    if user_blocks is not None:
        histories = histories.join(with_user_blocks(user_blocks, positions), S.USER_ID, "left")
    elif item_side_rules is not None and not (item_side_rules.excluded.any() or item_side_rules.category_cap):
        item_side_rules = None  # nothing any rule could remove: the lists need no wider pool
    return ScoringInputs(index, ctx.spark.sparkContext.broadcast(index), histories, positions, item_side_rules)
