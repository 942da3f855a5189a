"""Where tuned encoder versions live, and which one a night uses.

A version's files (model.safetensors with LoRA merged in, adapter/, training.json, the tokenizer)
sit in `<lakehouse.root>/_models/encoder/<version>`; its row in `encoder_versions` says whether it
passed its evaluation. The nightly, the evaluation and the finetune job's baseline all resolve the
encoder here: the newest version trained on or before the run date that passed, or the base model.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.config import HASHING_MODEL, Config
from hybridrec.embedding.encoder import cache_dir
from hybridrec.io.delta import is_table, read_table
from hybridrec.io.storage import child, download_folder, is_remote, table_path, upload_folder

log = logging.getLogger(__name__)

TUNED_SEPARATOR = "+"


def version_folder(root: str, version: str) -> str:
    return child(root if is_remote(root) else str(Path(root).expanduser().resolve()), "_models", "encoder", version)


def tuned_model_name(base_model: str, version: str) -> str:
    return f"{base_model}{TUNED_SEPARATOR}{version}"


def store_version(spark: SparkSession, local: Path, target: str) -> None:
    """Copies a trained version's folder to its place in the lakehouse (once; a version is never rewritten)."""
    if is_remote(target):
        upload_folder(spark, local, target)
    else:
        shutil.copytree(local, target, dirs_exist_ok=False)


def local_folder(spark: SparkSession, path: str) -> str:
    """A local copy of a version folder (object storage: downloaded once per machine into the cache)."""
    if not is_remote(path):
        return path
    target = cache_dir() / "encoders" / path.rstrip("/").rsplit("/", 1)[-1]
    if (target / "model.safetensors").is_file():
        return str(target)
    private = target.with_name(target.name + ".partial")
    shutil.rmtree(private, ignore_errors=True)  # a download that died half-way
    download_folder(spark, path, private)
    private.rename(target)
    return str(target)


def newest_passed(spark: SparkSession, cfg: Config, ds) -> dict | None:
    """The `encoder_versions` row of the newest version trained on or before `ds` that passed, for
    the configured base model; None when there is none (or the table does not exist)."""
    if not is_table(spark, table_path(cfg.lakehouse.root, S.ENCODER_VERSIONS.name)):
        return None  # no Spark job for the usual case: no version yet
    versions = read_table(spark, cfg.lakehouse.root, S.ENCODER_VERSIONS)
    row = (versions.where(F.col("passed") & (F.col(S.DS) <= F.lit(ds)) & (F.col("base_model") == cfg.embedding.model))
           .orderBy(F.desc(S.DS), F.desc("sequence")).first())
    return None if row is None else row.asDict()


def next_sequence(spark: SparkSession, root: str) -> int:
    """The `sequence` of the next version: how many versions there are."""
    if not is_table(spark, table_path(root, S.ENCODER_VERSIONS.name)):
        return 0
    return read_table(spark, root, S.ENCODER_VERSIONS).count()


def with_night_encoder(spark: SparkSession, cfg: Config, ds) -> Config:
    """`cfg` with embedding.model and model_path set to the tuned version this night uses, if any."""
    if not cfg.finetune.use_tuned or cfg.embedding.model == HASHING_MODEL:
        return cfg
    row = newest_passed(spark, cfg, ds)
    if row is None:
        return cfg
    log.info("encoder: %s (tuned on %s, %s)", row[S.MODEL], row[S.DS], row["reason"])
    embedding = cfg.embedding.model_copy(update={"model": row[S.MODEL], "model_path": local_folder(spark, row["path"]),
                                                 "onnx_path": ""})
    return cfg.model_copy(update={"embedding": embedding})
