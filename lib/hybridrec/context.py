"""What every step shares: the run context (session, config, ds, run id) and the two building
blocks that the nightly steps and the offline evaluation both use: fitting ALS factors and
turning factors, embeddings and popularity into a broadcast item index plus user histories."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from pyspark import Broadcast
from pyspark.sql import DataFrame, SparkSession

from hybridrec import __version__, als, embed, recommend
from hybridrec import schema as S
from hybridrec.config import AlsConfig, Config, dataset_kind
from hybridrec.io.delta import append_rows, read_table, write_table
from hybridrec.runs import StepRecord, check_claim, new_run_id


@dataclass
class RunContext:
    spark: SparkSession
    cfg: Config
    ds: date
    run_id: str = ""
    force: bool = False           # publish even when the quality gate fails (recorded in `runs`)
    records: list[StepRecord] = field(default_factory=list)
    step: StepRecord | None = None  # the step running now: its claim is checked before each write

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


def positive_min_weight(cfg: Config) -> float:
    kind = dataset_kind(cfg)
    return {"movielens": cfg.movielens.positive_min_weight, "synthetic": cfg.synthetic.positive_min_weight,
            "files": cfg.files.positive_min_weight}[kind]


def model_version(cfg: Config) -> str:
    scoring = {"als": cfg.als.model_dump(), "recommend": cfg.recommend.model_dump(), "model": cfg.embedding.model}
    digest = hashlib.sha256(json.dumps(scoring, sort_keys=True).encode()).hexdigest()[:10]
    return f"{__version__}+{digest}"


def fit_factors(interactions: DataFrame, cfg: AlsConfig, ds: date) -> tuple[DataFrame, DataFrame]:
    """ALS user and item factor rows (string ids), persisted, from `interactions`."""
    pairs = als.with_summed_pairs(interactions).persist()  # read by the indexer, then indexed once
    indexer = als.build_indexer().fit(pairs)
    indexed = als.with_indices(pairs, indexer).persist()  # read by ALS and by the id maps
    model = als.build_als(cfg, interactions.sparkSession.sparkContext.defaultParallelism).fit(als.ratings(indexed))
    pairs.unpersist()
    user_factors, item_factors = (df.persist() for df in als.factors_frames(
        model, als.id_index(indexed, S.USER_ID, als.USER_IDX), als.id_index(indexed, S.ITEM_ID, als.ITEM_IDX), ds))
    user_factors.count()
    item_factors.count()
    indexed.unpersist()
    return user_factors, item_factors


@dataclass
class ScoringInputs:
    index: recommend.ItemIndex
    index_bc: Broadcast
    histories: DataFrame          # one row per user with history (see recommend.with_histories)

    def release(self) -> None:
        self.index_bc.unpersist()


def scoring_inputs(ctx: RunContext, *, interactions: DataFrame, items: DataFrame, item_factors: DataFrame,
                   user_factors: DataFrame, params: recommend.ScoringParams) -> ScoringInputs:
    """Collects the item side (one row per catalogue item) to the driver, broadcasts it once."""
    embeddings = embed.latest_embeddings(ctx.read(S.ITEM_EMBEDDINGS), items, model=ctx.cfg.embedding.model)
    popularity = recommend.with_popularity(interactions, as_of_epoch_s=params.as_of_epoch_s,
                                           half_life_days=params.recency_half_life_days)
    item_side = (items.select(S.ITEM_ID).join(item_factors.select(S.ITEM_ID, S.FEATURES), S.ITEM_ID, "left")
                 .join(embeddings, S.ITEM_ID, "left").join(popularity, S.ITEM_ID, "left"))
    index = recommend.build_item_index(item_side.toPandas(), mapping_ridge=ctx.cfg.recommend.mapping_ridge)
    positions = ctx.spark.createDataFrame(pd.DataFrame({
        S.ITEM_ID: index.item_ids, recommend.ITEM_POS: np.arange(len(index.item_ids), dtype=np.int64)}))
    histories = recommend.with_histories(interactions, positions, user_factors)
    return ScoringInputs(index, ctx.spark.sparkContext.broadcast(index), histories)
