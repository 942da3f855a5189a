"""The Spark side of scoring: users arrive in Arrow batches (mapInArrow) with their history and
factors, the broadcast ItemIndex is unpickled once per worker, and the numpy kernel scores them
block by block. Ids are taken from Arrow string arrays by position, so no Python string object is
made per output row (with pandas, building and converting them cost as much as the scoring)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from pyspark import Broadcast
from pyspark.sql import DataFrame
from pyspark.sql.pandas.types import to_arrow_schema

from hybridrec import schema as S
from hybridrec.scoring.candidates import FEATURES, MATRICES_PER_BLOCK, SOURCES, candidates
from hybridrec.scoring.index import ItemIndex
from hybridrec.scoring.kernel import History, score_rows
from hybridrec.scoring.params import ScoringParams
from hybridrec.scoring.rows import ScoredRows
from hybridrec.scoring.rules import RULES


def with_hybrid_recommendations(
    histories_df: DataFrame, index_bc: Broadcast, params: ScoringParams
) -> DataFrame:
    """Top-N hybrid rows (schema.SCORED_SCHEMA) for every user in `histories_df` (one row per user:
    user_id, hist_pos, hist_weight, hist_ts, features; see transforms.features.with_histories)."""

    def score_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        index: ItemIndex = index_bc.value  # unpickled once per worker process
        n_items = max(1, len(index.item_ids))
        # Per (user, item): a float32 score and argpartition's int64 index (the ranker's candidates:
        # several float32 matrices); keep them inside block_bytes.
        per_user = n_items * (4 * MATRICES_PER_BLOCK if any(b.ranked for _, b in params.blends) else 16)
        block = max(1, params.block_bytes // per_user)
        item_ids = schema = None
        for batch in batches:
            if schema is None:
                large = batch.column(S.USER_ID).type == pa.large_string()
                schema = to_arrow_schema(S.SCORED_SCHEMA, prefers_large_types=large)
                item_ids = pa.array(index.item_ids, type=schema.field(S.ITEM_ID).type)
            for start in range(0, batch.num_rows, block):
                part = batch.slice(start, block)
                rows = score_rows(_list_rows(part.column(S.FEATURES), np.float32), _histories(part), index, params)
                yield _arrow_rows(rows, part.column(S.USER_ID), item_ids, schema)

    return histories_df.mapInArrow(score_partition, S.SCORED_SCHEMA)


CANDIDATE_SCHEMA = "user_id string, item_id string, is_new boolean, features array<float>"


def with_candidate_features(histories_df: DataFrame, index_bc: Broadcast, params: ScoringParams) -> DataFrame:
    """user_id, item_id, is_new, features (scoring.candidates.FEATURES order): the ranker's
    candidates for every user in `histories_df`, the rows it is trained on."""

    def candidate_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        index: ItemIndex = index_bc.value
        block = max(1, params.block_bytes // (max(1, len(index.item_ids)) * 4 * MATRICES_PER_BLOCK))
        item_ids = pa.array(index.item_ids, type=pa.string())
        for batch in batches:
            for start in range(0, batch.num_rows, block):
                part = batch.slice(start, block)
                c = candidates(_list_rows(part.column(S.FEATURES), np.float32), _histories(part), index, params)
                offsets = pa.array(np.arange(len(c.rows) + 1, dtype=np.int32) * len(FEATURES))
                features = pa.ListArray.from_arrays(offsets, pa.array(c.features.ravel(), type=pa.float32()))
                yield pa.RecordBatch.from_arrays(
                    [part.column(S.USER_ID).cast(pa.string()).take(c.rows), item_ids.take(c.items),
                     pa.array(c.is_new), features], names=["user_id", "item_id", "is_new", "features"])

    return histories_df.mapInArrow(candidate_partition, CANDIDATE_SCHEMA)


def _histories(part: pa.RecordBatch) -> list[History]:
    """Each user's history in a batch of transforms.features.with_histories rows."""
    pos, weight, ts = (_list_rows(part.column(c), t) for c, t in
                       ((S.HIST_POS, np.int64), (S.HIST_WEIGHT, np.float64), (S.HIST_TS, np.float64)))
    names = part.schema.names
    blocked = (_list_rows(part.column(S.BLOCKED_POS), np.int64) if S.BLOCKED_POS in names
               else [np.zeros(0, np.int64)] * part.num_rows)
    text = (_list_rows(part.column(S.TEXT_EMBEDDING), np.float32) if S.TEXT_EMBEDDING in names
            else [np.zeros(0, np.float32)] * part.num_rows)
    return [History(*h) for h in zip(pos, weight, ts, blocked, text, strict=True)]


def _list_rows(column: pa.Array, dtype: type) -> list[np.ndarray]:
    """Each row of an Arrow list column as a numpy view (empty where null): no Python object per element."""
    offsets = column.offsets.to_numpy()
    values = column.values.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    return [values[offsets[i]:offsets[i + 1]] if valid[i] else values[:0] for i in range(len(column))]


def _arrow_rows(r: ScoredRows, user_ids: pa.Array, item_ids: pa.Array, schema: pa.Schema) -> pa.RecordBatch:
    def nullable(values: np.ndarray) -> pa.Array:
        return pa.array(values, type=pa.float64(), mask=~np.isfinite(values))

    strategies = pa.array(r.names, type=schema.field(S.STRATEGY).type)
    return pa.RecordBatch.from_arrays([
        user_ids.take(r.rows), pa.array(r.rank, type=pa.int32()), item_ids.take(r.items),
        pa.array(r.score, type=pa.float64()), nullable(r.als), nullable(r.content),
        item_ids.take(pa.array(r.reason, mask=r.reason < 0)), strategies.take(r.strategy),
        _SIGNAL_NAMES.take(pa.array(r.signal.astype(np.int64) - 1, mask=r.signal == 0)).cast(
            schema.field(S.SIGNAL).type),
        _RULE_NAMES.take(pa.array(r.removed_by.astype(np.int64) - 1, mask=r.removed_by == 0)).cast(
            schema.field(S.REMOVED_BY).type),
    ], schema=schema)


_RULE_NAMES = pa.array(RULES, type=pa.string())
_SIGNAL_NAMES = pa.array(SOURCES, type=pa.string())
