"""Guardrails on a night's data, through the steps on the topic dataset: an input mostly quarantined is
refused at ingest with the cause named and no table changed; headers with a repeated or mis-spelt
column are refused with the cause named; a night whose interactions halve is refused before its
publish, publishes with --force, and every check lands in `data_quality` once per night."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest
from pyspark.sql import functions as F

from conftest import make_config
from hybridrec import schema as S
from hybridrec.errors import GuardrailError, InputHeaderError, QuarantineThresholdError
from hybridrec.io.delta import partitions, read_table, table_version
from hybridrec.sources.files import INTERACTION_COLUMNS, INTERACTION_OPTIONAL
from hybridrec.sources.readers import read_source
from hybridrec.steps import RunContext, run_steps
from topic_data import files_settings, write_topic_dataset

NIGHT_1, NIGHT_2 = date(2026, 11, 21), date(2026, 11, 22)
INGEST_TABLES = (S.INTERACTIONS, S.ITEMS, S.USERS, S.QUARANTINE)
def _guarded(root, *settings):
    """The test settings with the guardrails on (TEST_SETTINGS turns them off for other tests)."""
    return make_config(root, "guardrails.enabled=true", *settings)


CHECKS = {"interactions", "users", "items", "new_item_share", "users_with_recommendations",
          "interactions_quarantined_share", "items_quarantined_share", "score_psi"}


def _epoch_ms(iso: str) -> str:
    return str(int(datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC).timestamp() * 1000))


def _rewrite_interactions(paths: dict, change) -> dict:
    frame = pd.read_csv(paths["interactions"], dtype=str)
    change(frame).to_csv(paths["interactions"], index=False)
    return paths


@pytest.fixture(scope="module")
def ingested(spark, tmp_path_factory):
    """A lakehouse with night 1 ingested from the good topic dataset."""
    base = tmp_path_factory.mktemp("ingested")
    cfg = _guarded(base / "lh", *files_settings(write_topic_dataset(base / "good")))
    run_steps(RunContext(spark=spark, cfg=cfg, ds=NIGHT_1), ("ingest",))
    return base


def _versions(spark, root):
    return {spec.name: table_version(spark, root, spec) for spec in INGEST_TABLES}


BAD_INPUTS = {
    # epoch milliseconds given to timestamp_unit "s": every event lands thousands of years ahead
    "milliseconds": (lambda f: f.assign(event_ts=f["event_ts"].map(_epoch_ms)), ['files.timestamp_unit="s"'],
                     ["36 of 36 rows (100.0%) quarantined", "future_event_ts: 36 rows", "epoch milliseconds",
                      "set files.timestamp_unit = 'ms'"]),
    # every event after the run date
    "after_run_date": (lambda f: f.assign(event_ts="2026-12-01T08:00:00Z"), [],
                       ["36 of 36 rows", "lie after the run date 2026-11-22 (the earliest at 2026-12-01 08:00:00)"]),
    # a 10% share of rows with a reason that has its own tighter limit
    "per_reason_limit": (lambda f: f.assign(event_ts=[*f["event_ts"][:-4], *["soon"] * 4]),
                         ["guardrails.max_quarantined_share=0.5",
                          "guardrails.max_quarantined_share_by_reason={bad_event_ts=0.05}"],
                         ["4 rows (11.1%) quarantined as bad_event_ts, above "
                          "guardrails.max_quarantined_share_by_reason.bad_event_ts 5.0%", '"event_ts":"soon"']),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_a_mostly_quarantined_input_is_refused_at_ingest_and_no_table_changes(spark, ingested, tmp_path, case):
    change, settings, expected = BAD_INPUTS[case]
    paths = _rewrite_interactions(write_topic_dataset(tmp_path / "in"), change)
    cfg = _guarded(ingested / "lh", *files_settings(paths), *settings)
    before = _versions(spark, cfg.lakehouse.root)
    with pytest.raises(QuarantineThresholdError) as refused:
        run_steps(RunContext(spark=spark, cfg=cfg, ds=NIGHT_2), ("ingest",))
    message = str(refused.value)
    assert message.startswith("ingest refused the night's input:\ninteractions: ") and "Nothing was written" in message
    for part in expected:
        assert part in message, message
    assert _versions(spark, cfg.lakehouse.root) == before
    failed = read_table(spark, cfg.lakehouse.root, S.RUNS).where(
        (F.col(S.DS) == NIGHT_2) & (F.col("status") == "failed")).orderBy(F.col("ended_at").desc()).first()
    assert failed["step"] == "ingest" and "QuarantineThresholdError" in failed["message"]


def test_force_ingests_past_the_limit_and_runs_records_it(spark, ingested, tmp_path):
    change, settings, _ = BAD_INPUTS["milliseconds"]
    paths = _rewrite_interactions(write_topic_dataset(tmp_path / "in"), change)
    cfg = _guarded(ingested / "lh", *files_settings(paths), *settings)
    ctx = RunContext(spark=spark, cfg=cfg, ds=NIGHT_2, force=True)
    run_steps(ctx, ("ingest",))
    counts = ctx.records[0].row_counts
    assert counts["quarantine_forced"] == 1 and counts["interactions_quarantined:future_event_ts"] == 36
    row = read_table(spark, cfg.lakehouse.root, S.RUNS).where(
        (F.col(S.RUN_ID) == ctx.run_id) & (F.col("status") == "succeeded")).first()
    assert row["row_counts"]["quarantine_forced"] == 1 and row["message"].startswith("FORCED past the quarantine limit")
    assert read_table(spark, cfg.lakehouse.root, S.QUARANTINE, ds=NIGHT_2).count() == 36


HEADERS = {
    "repeated": ("user_id,item_id,event_ts,weight,weight\nu1,i1,2026-11-01,1,2\n",
                 "the header repeats column 'weight' (positions [4, 5]"),
    "case": ("User_ID,item_id,event_ts,weight\nu1,i1,2026-11-01,1\n",
             "column 'User_ID' differs only by case; expected 'user_id'"),
    "spaces": ("user_id, item_id ,event_ts,weight\nu1,i1,2026-11-01,1\n",
               "column ' item_id ' has spaces around it; expected 'item_id'"),
    "optional_column": ("user_id,item_id,event_ts,Weight\nu1,i1,2026-11-01,1\n",
                        "column 'Weight' differs only by case; expected 'weight'"),
}


@pytest.mark.parametrize("case", sorted(HEADERS))
def test_header_problems_are_named_and_no_table_changes(spark, ingested, tmp_path, case):
    text, expected = HEADERS[case]
    paths = write_topic_dataset(tmp_path / "in")
    paths["interactions"].write_text(text, encoding="utf-8")
    cfg = _guarded(ingested / "lh", *files_settings(paths))
    before = _versions(spark, cfg.lakehouse.root)
    with pytest.raises(InputHeaderError) as refused:
        run_steps(RunContext(spark=spark, cfg=cfg, ds=NIGHT_2), ("ingest",))
    assert str(refused.value).startswith(f"interactions input {paths['interactions']}: ")
    assert expected in str(refused.value)
    assert _versions(spark, cfg.lakehouse.root) == before


def test_a_byte_order_mark_is_read_as_utf8(spark, tmp_path):
    path = tmp_path / "interactions.csv"
    path.write_text("\ufeffuser_id,item_id,event_ts,weight\nu1,i1,2026-11-01,1\n", encoding="utf-8")
    df = read_source(spark, str(path), "csv", what="interactions", required=INTERACTION_COLUMNS,
                     optional=INTERACTION_OPTIONAL)
    assert df.columns[:4] == ["user_id", "item_id", "event_ts", "weight"] and df.first()["user_id"] == "u1"


NIGHT_STEPS = ("ingest", "embed_items", "train_als", "recommend")
NEXT_NIGHT_STEPS = ("ingest", "train_als", "recommend")  # item texts unchanged: embeddings are cached


def _quality(spark, root, ds):
    return {r["check"]: r for r in read_table(spark, root, S.DATA_QUALITY, ds=ds).collect()}


def test_a_night_whose_interactions_halve_is_refused_then_forced(spark, tmp_path):
    root = tmp_path / "lh"
    cfg = _guarded(root, *files_settings(write_topic_dataset(tmp_path / "night1")))
    run_steps(RunContext(spark=spark, cfg=cfg, ds=NIGHT_1), NIGHT_STEPS)
    first = _quality(spark, str(root), NIGHT_1)
    assert set(first) == CHECKS and {r["status"] for r in first.values()} <= {"no_baseline", "passed"}
    assert first["interactions"]["value"] == 36 and first["users_with_recommendations"]["value"] == 1.0

    # The published night's figures are recomputed from its partitions when `data_quality` lacks them
    # (a night published before the table existed): the verdict below is the same either way.
    spark.sql(f"DELETE FROM delta.`{root / S.DATA_QUALITY.name}`")

    # Night 2: only the first half of the interactions (six of the twelve fans) arrive.
    half = _rewrite_interactions(write_topic_dataset(tmp_path / "night2"), lambda f: f.head(18))
    cfg = _guarded(root, *files_settings(half))
    published = table_version(spark, str(root), S.RECOMMENDATIONS)
    with pytest.raises(GuardrailError) as refused:
        run_steps(RunContext(spark=spark, cfg=cfg, ds=NIGHT_2), NEXT_NIGHT_STEPS)
    message = str(refused.value)
    assert "interactions 18 vs 36 on the last published night (-50.0%; allowed -30% .. +100%)" in message, message
    assert "users 6 vs 12 on the last published night (-50.0%" in message
    assert table_version(spark, str(root), S.RECOMMENDATIONS) == published
    assert partitions(spark, str(root), S.RECOMMENDATIONS) == [NIGHT_1]
    refused_checks = _quality(spark, str(root), NIGHT_2)
    assert set(refused_checks) == CHECKS and refused_checks["interactions"]["status"] == "failed"
    assert (refused_checks["interactions"]["baseline"], refused_checks["interactions"]["lower_bound"]) == (36, 36 * 0.7)
    assert refused_checks["interactions"]["baseline_ds"] == NIGHT_1

    ctx = RunContext(spark=spark, cfg=cfg, ds=NIGHT_2, force=True)
    run_steps(ctx, ("recommend",))
    assert partitions(spark, str(root), S.RECOMMENDATIONS) == [NIGHT_1, NIGHT_2]
    row = read_table(spark, str(root), S.RUNS).where(
        (F.col(S.RUN_ID) == ctx.run_id) & (F.col("status") == "succeeded")).first()
    assert row["row_counts"]["guardrails_forced"] == 1 and row["message"].startswith("FORCED past the guardrails")
    forced = read_table(spark, str(root), S.DATA_QUALITY, ds=NIGHT_2)
    assert forced.count() == len(CHECKS)  # replaced, not appended: one row per check per night
    forced = _quality(spark, str(root), NIGHT_2)
    assert forced["interactions"]["status"] == forced["users"]["status"] == "forced"
    assert forced["interactions"][S.RUN_ID] == ctx.run_id
    assert forced["score_psi"]["value"] is not None and forced["score_psi"]["upper_bound"] == 0.25
