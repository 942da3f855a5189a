"""Where data enters: dataset adapters (movielens, synthetic, files) turn a named dataset into raw
interactions, items and (optional) users, through the input readers (readers.py)."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from hybridrec.config import Config, dataset_kind


@dataclass(frozen=True)
class RawInputs:
    interactions: DataFrame   # user_id, item_id, event_ts, weight?, event_type?, source (+ extra columns)
    items: DataFrame          # item_id, title?, description?, tags?, categories?, source
    users: DataFrame | None   # user_id, source
    timestamp_unit: str       # how event_ts strings are written: iso | s | ms | us
    positive_min_weight: float
    name: str


def load_raw_inputs(spark: SparkSession, cfg: Config) -> RawInputs:
    kind = dataset_kind(cfg)
    if kind == "movielens":
        from hybridrec.sources.movielens import load_movielens
        return load_movielens(spark, cfg.movielens)
    if kind == "synthetic":
        from hybridrec.sources.synthetic import load_synthetic
        return load_synthetic(spark, cfg.synthetic, cfg.lakehouse.root)
    from hybridrec.sources.files import load_files
    return load_files(spark, cfg.files)
