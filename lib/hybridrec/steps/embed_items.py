"""The embed_items step: items whose (item_id, text_hash, model) has no vector yet are embedded in
Spark and merged into `item_embeddings`; unchanged texts are never embedded again."""

from __future__ import annotations

import logging

from py4j.protocol import Py4JJavaError
from pyspark.errors import PythonException
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.config import EmbeddingConfig
from hybridrec.embedding.encoder import resolve_model_path
from hybridrec.errors import EmbeddingError
from hybridrec.steps.context import RunContext
from hybridrec.steps.runs import StepRecord
from hybridrec.transforms import embed

log = logging.getLogger(__name__)


def embed_items_step(ctx: RunContext, record: StepRecord) -> None:
    items = ctx.read(S.ITEMS)
    record.row_counts.update({"items": items.count(), "embedded": embed_catalogue(ctx, ctx.cfg.embedding)})


def embed_catalogue(ctx: RunContext, cfg: EmbeddingConfig) -> int:
    """Embeds, with `cfg`'s model, every item of the night whose text has no vector for that model yet;
    returns how many. A new model version (a tuned encoder) so re-embeds the catalogue once."""
    items = ctx.read(S.ITEMS)
    cached = ctx.read(S.ITEM_EMBEDDINGS, required=False)
    todo = embed.filter_needs_embedding(items, cached, model=cfg.model).persist()
    n_todo = todo.count()
    if n_todo == 0:
        log.info("embed_items: every item already has an embedding for %s", cfg.model)
        todo.unpersist()
        return 0
    # Range partitions by text length: similar lengths share Arrow batches, so padding is small.
    # Descending, so the slowest (longest) partitions are scheduled first and none straggles last.
    partitions = max(1, min(n_todo // 64 + 1, ctx.spark.sparkContext.defaultParallelism * 8))
    ordered = todo.repartitionByRange(partitions, F.length(S.TEXT).desc())
    embedded = embed.with_embedding(ordered, model_path=resolve_model_path(cfg.model_path),
                                    batch_size=cfg.batch_size, max_length=cfg.max_length, runtime=cfg.runtime,
                                    onnx_path=cfg.onnx_path)
    rows = embedded.select(S.ITEM_ID, S.TEXT_HASH, F.lit(cfg.model).alias(S.MODEL), S.EMBEDDING,
                           F.lit(ctx.ds).alias(S.DS))
    try:
        ctx.write(rows, S.ITEM_EMBEDDINGS)
    except (PythonException, Py4JJavaError) as exc:  # MERGE surfaces worker errors as the JVM's
        message = embed.worker_error(exc)
        if message is None:
            raise
        raise EmbeddingError(f"step embed_items: {message}; nothing was written") from exc
    finally:
        todo.unpersist()
    return n_todo
