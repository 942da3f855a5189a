"""Spark side of embedding: which items need a vector, the pandas UDF that embeds them (the model
loads once per Python worker), and each item's current vector from the cache table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from hybridrec import schema as S
from hybridrec.embedding.encoder import OnnxModel, embed_texts, onnx_model
from hybridrec.errors import EmbeddingError


def with_embedding(items_df: DataFrame, *, model_path: str, batch_size: int, max_length: int,
                   runtime: str = "onnxruntime", onnx_path: str = "") -> DataFrame:
    """Adds `embedding` (array<float>) computed from `text` by the model at `model_path`.

    When the model fails on a batch, the batch is retried text by text so the error names the item.
    """
    shipped: tuple[str, str] | None = None
    if runtime == "onnxruntime":
        model = onnx_model(model_path, onnx_path)
        context = items_df.sparkSession.sparkContext
        for file in (model.onnx, model.tokenizer):
            context.addFile(str(file))
        shipped = (model.onnx.name, model.tokenizer.name)

    def embed(texts: list[str]) -> np.ndarray:
        onnx = None
        if shipped is not None:
            from pyspark import SparkFiles

            onnx = OnnxModel(Path(SparkFiles.get(shipped[0])), Path(SparkFiles.get(shipped[1])))
        return embed_texts(texts, model_path=model_path, batch_size=batch_size, max_length=max_length,
                           torch_threads=1, runtime=runtime, onnx=onnx)

    @F.pandas_udf(T.ArrayType(T.FloatType(), False))
    def embed_udf(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.Series]:
        for ids, texts in batches:
            try:
                vectors = embed(texts.tolist())
            except Exception as batch_error:
                raise EmbeddingError(_failing_item(ids.tolist(), texts.tolist(), embed, batch_error)) from batch_error
            yield pd.Series(list(vectors))

    return items_df.withColumn(S.EMBEDDING, embed_udf(F.col(S.ITEM_ID), F.col(S.TEXT)))


def _failing_item(ids: list[str], texts: list[str], embed: Any, batch_error: Exception) -> str:
    for item_id, text in zip(ids, texts, strict=True):
        try:
            embed([text])
        except Exception as exc:
            return f"embedding failed on item {item_id!r}: {type(exc).__name__}: {exc}"
    return f"embedding failed on a batch of {len(ids)} items starting at {ids[0]!r}: {batch_error}"


def worker_error(exc: BaseException) -> str | None:
    """The EmbeddingError message raised inside a Python worker, found in the error Spark returns."""
    marker = f"{EmbeddingError.__name__}: "
    lines = [line for line in str(exc).splitlines() if marker in line]
    return lines[-1].split(marker, 1)[1].strip() if lines else None


def filter_needs_embedding(items_df: DataFrame, cached_df: DataFrame, *, model: str) -> DataFrame:
    """Items whose (item_id, text_hash) has no cached embedding for `model`."""
    cached = cached_df.where(F.col(S.MODEL) == model).select(S.ITEM_ID, S.TEXT_HASH)
    return items_df.join(cached, [S.ITEM_ID, S.TEXT_HASH], "left_anti")


def latest_embeddings(cached_df: DataFrame, items_df: DataFrame, *, model: str) -> DataFrame:
    """item_id, embedding for the current text of each item (one row per item)."""
    current = items_df.select(S.ITEM_ID, S.TEXT_HASH)
    cached = cached_df.where(F.col(S.MODEL) == model).select(S.ITEM_ID, S.TEXT_HASH, S.EMBEDDING)
    # Concurrent runs may both append the same key; any copy is the same vector.
    cached = cached.dropDuplicates([S.ITEM_ID, S.TEXT_HASH])
    return current.join(cached, [S.ITEM_ID, S.TEXT_HASH], "inner").select(S.ITEM_ID, S.EMBEDDING)
