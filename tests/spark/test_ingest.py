"""Ingest: bad rows go to quarantine with a reason, counts reconcile, bad inputs name themselves."""

from __future__ import annotations

from datetime import date

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from conftest import make_config
from hybridrec import schema as S
from hybridrec.errors import MissingColumnError, SourceNotFoundError
from hybridrec.io.delta import read_table
from hybridrec.steps import RunContext, run_steps
from hybridrec.transforms import ingest
from topic_data import files_settings, write_topic_dataset

DS = date(2026, 11, 22)
WEIGHTS = {"view": 1.0, "purchase": 5.0}


def _raw(spark, rows, columns=("user_id", "item_id", "event_ts", "weight", "event_type")):
    df = spark.createDataFrame(rows, ", ".join(f"{c} string" for c in columns))
    return df.withColumn(S.SOURCE, F.lit("test.csv"))


def test_each_bad_interaction_gets_its_reason(spark):
    rows = [
        ("u1", "i1", "2026-11-01T10:00:00Z", "2.0", None, "ok"),
        (None, "i1", "2026-11-01T10:00:00Z", "1", None, ingest.NULL_USER_ID),
        ("  ", "i1", "2026-11-01T10:00:00Z", "1", None, ingest.NULL_USER_ID),
        ("u1", "", "2026-11-01T10:00:00Z", "1", None, ingest.NULL_ITEM_ID),
        ("u1", "i1", None, "1", None, ingest.MISSING_EVENT_TS),
        ("u1", "i1", "yesterday-ish", "1", None, ingest.BAD_EVENT_TS),
        ("u1", "i1", "2026-11-23T00:00:00Z", "1", None, ingest.FUTURE_EVENT_TS),
        ("u1", "i1", "2026-11-01T10:00:00Z", None, None, ingest.MISSING_WEIGHT),
        ("u1", "i1", "2026-11-01T10:00:00Z", None, "teleport", ingest.UNKNOWN_EVENT_TYPE),
        ("u1", "i1", "2026-11-01T10:00:00Z", "NaN", None, ingest.BAD_WEIGHT),
        ("u1", "i1", "2026-11-01T10:00:00Z", "lots", None, ingest.BAD_WEIGHT),
        ("u1", "i1", "2026-11-01T10:00:00Z", "-1", None, ingest.NON_POSITIVE_WEIGHT),
        ("u1", "i1", "2026-11-01T10:00:00Z", "0", None, ingest.NON_POSITIVE_WEIGHT),
        ("u1", "i1", "2026-11-01T10:00:00Z", "1e9", None, ingest.HUGE_WEIGHT),
        ("u2", "i1", "2026-11-01T10:00:00Z", None, "PURCHASE", "ok"),
    ]
    raw = _raw(spark, [r[:5] for r in rows])
    out = ingest.with_interaction_reason(raw, ds=DS, timestamp_unit="iso", event_weights=WEIGHTS, max_weight=1000.0)
    got = out.select(F.coalesce(S.REASON, F.lit("ok")).alias("r"), S.WEIGHT).collect()
    assert [g["r"] for g in got] == [r[5] for r in rows]
    assert got[-1][S.WEIGHT] == 5.0  # event_type mapped through config, case-insensitively


def test_epoch_seconds_timestamps_parse(spark):
    raw = _raw(spark, [("u1", "i1", "964982703", "4.0", None)])
    out = ingest.with_interaction_reason(raw, ds=DS, timestamp_unit="s", event_weights={}, max_weight=10.0)
    row = out.first()
    assert row[S.REASON] is None
    assert row[S.EVENT_TS].isoformat().startswith("2000-07-30T18:45:03")


def test_duplicates_and_unknown_items(spark):
    raw = _raw(spark, [
        ("u1", "i1", "2026-11-01T10:00:00Z", "1", None),
        ("u1", "i1", "2026-11-01T10:00:00Z", "3", None),
        ("u1", "nope", "2026-11-01T10:00:00Z", "1", None),
    ])
    items = spark.createDataFrame([("i1",)], "item_id string")
    out = ingest.with_interaction_reason(raw, ds=DS, timestamp_unit="iso", event_weights={}, max_weight=10.0)
    out = ingest.with_duplicate_event_reason(ingest.with_catalogue_reason(out, items), window_seconds=0)
    expected = spark.createDataFrame(
        [("i1", 3.0, None), ("i1", 1.0, ingest.DUPLICATE_EVENT), ("nope", 1.0, ingest.UNKNOWN_ITEM)],
        "item_id string, weight double, reason string")
    assert_df_equality(out.select(S.ITEM_ID, S.WEIGHT, S.REASON), expected,
                       ignore_row_order=True, ignore_nullable=True)


def test_items_text_tags_and_reasons(spark):
    raw = spark.createDataFrame([
        ("a", "Title A", "About a.", "X| y ,x"),
        ("b", "  ", None, None),
        (None, "Orphan", "x", None),
        ("c", "Short", None, None),
        ("c", "Short", "A longer description wins.", None),
    ], "item_id string, title string, description string, tags string").withColumn(S.SOURCE, F.lit("items.csv"))
    out = ingest.with_item_reason(raw, max_text_chars=100).select(S.ITEM_ID, S.TAGS, S.TEXT, S.REASON)
    expected = spark.createDataFrame([
        ("a", ["x", "y"], "Title A. x, y. About a.", None),
        ("b", [], "", ingest.EMPTY_TEXT),
        (None, [], "Orphan. x", ingest.NULL_ITEM_ID),
        ("c", [], "Short", ingest.DUPLICATE_ITEM_ID),
        ("c", [], "Short. A longer description wins.", None),
    ], "item_id string, tags array<string>, text string, reason string")
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_ingest_step_quarantines_and_reconciles(spark, tmp_path):
    bad = [
        {"user_id": "", "item_id": "space_0", "event_ts": "2026-11-01T00:00:00Z", "event_type": "view"},
        {"user_id": "x", "item_id": "space_0", "event_ts": "not a time", "event_type": "view"},
        {"user_id": "x", "item_id": "ghost", "event_ts": "2026-11-01T00:00:00Z", "event_type": "view"},
    ]
    paths = write_topic_dataset(tmp_path / "in", extra_interactions=bad,
                                extra_items=[{"item_id": "blank", "title": " ", "description": "", "tags": ""}])
    cfg = make_config(tmp_path / "lh", *files_settings(paths))
    ctx = RunContext(spark=spark, cfg=cfg, ds=DS)
    run_steps(ctx, ("ingest",))
    quarantine = read_table(spark, cfg.lakehouse.root, S.QUARANTINE, ds=DS.isoformat())
    got = sorted((r[S.ENTITY], r[S.REASON], r[S.SOURCE].endswith(".csv")) for r in quarantine.collect())
    assert got == [("interactions", "bad_event_ts", True), ("interactions", "null_user_id", True),
                   ("interactions", "unknown_item", True), ("items", "empty_text", True)]
    counts = ctx.records[0].row_counts
    assert counts["interactions_read"] == 39 == counts["interactions_kept"] + counts["interactions_quarantined"]
    assert counts["items_read"] == 19 == counts["items_kept"] + counts["items_quarantined"]
    record = quarantine.where(F.col(S.REASON) == "bad_event_ts").first()[S.RECORD]
    assert '"event_ts":"not a time"' in record


def test_missing_column_names_file_and_column(spark, tmp_path):
    path = tmp_path / "interactions.csv"
    path.write_text("user_id,item\nu1,i1\n")
    items = tmp_path / "items.csv"
    items.write_text("item_id,title\ni1,T\n")
    cfg = make_config(tmp_path / "lh", 'dataset.kind="files"', f'files.interactions="{path}"', f'files.items="{items}"')
    with pytest.raises(MissingColumnError) as err:
        run_steps(RunContext(spark=spark, cfg=cfg, ds=DS), ("ingest",))
    assert str(path) in str(err.value) and "item_id" in str(err.value)


def test_missing_input_path_is_a_clear_error(spark, tmp_path):
    cfg = make_config(tmp_path / "lh", 'dataset.kind="files"', f'files.interactions="{tmp_path}/nope.csv"',
                      f'files.items="{tmp_path}/items.csv"')
    with pytest.raises(SourceNotFoundError, match=r"nope\.csv"):
        run_steps(RunContext(spark=spark, cfg=cfg, ds=DS), ("ingest",))


def test_delta_and_parquet_sources_read_like_csv(spark, tmp_path):
    import pandas as pd
    from deltalake import write_deltalake

    paths = write_topic_dataset(tmp_path / "in")
    items_delta = tmp_path / "items_delta"
    write_deltalake(str(items_delta), pd.read_csv(paths["items"]))
    interactions_parquet = tmp_path / "interactions.parquet"
    pd.read_csv(paths["interactions"]).to_parquet(interactions_parquet)
    cfg = make_config(tmp_path / "lh", 'dataset.kind="files"', f'files.items="{items_delta}"',
                      'files.items_format="delta"', f'files.interactions="{interactions_parquet}"',
                      'files.interactions_format="parquet"')
    ctx = RunContext(spark=spark, cfg=cfg, ds=DS)
    run_steps(ctx, ("ingest",))
    counts = ctx.records[0].row_counts
    assert (counts["items_kept"], counts["interactions_kept"], counts["quarantined"]) == (18, 36, 0)
