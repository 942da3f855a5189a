"""Bad input, one fixture file per case: every row ends kept or in `quarantine` with its source file
and a reason code, and read = kept + quarantined per source file, as recorded in `runs`; inputs that
cannot be read at all fail with an error naming the file and the column."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import functions as F

from conftest import make_config
from hybridrec import schema as S
from hybridrec.errors import EmptyInputError, InputTypeError, MissingColumnError, SourceNotFoundError
from hybridrec.io.delta import read_table, table_version
from hybridrec.sources import load_raw_inputs
from hybridrec.steps import RunContext, run_steps
from hybridrec.transforms import ingest

DS = date(2026, 11, 22)
FIXTURES = Path(__file__).parents[1] / "fixtures" / "bad_input"
GOOD_ITEMS = FIXTURES / "good_items.csv"
GOOD_INTERACTIONS = FIXTURES / "good_interactions.csv"


def _long_text_items(folder: Path) -> Path:
    path = folder / "items_long_text.csv"
    shutil.copy(GOOD_ITEMS, path)
    with path.open("a", encoding="utf-8") as f:
        f.write("long,Endless Saga," + "word " * 20_000 + ",epic\n")  # 100,000 characters
    return path


# case: (input replaced, fixture, {reason: rows quarantined from the fixture}, rows kept from the fixture)
QUARANTINE_CASES = {
    "null_or_empty_ids": ("interactions", "null_ids.csv", {"null_user_id": 2, "null_item_id": 2}, 1),
    "timestamps": ("interactions", "bad_timestamps.csv",
                   {"bad_event_ts": 2, "missing_event_ts": 1, "future_event_ts": 1}, 1),
    "weights": ("interactions", "bad_weights.csv",
                {"non_positive_weight": 2, "bad_weight": 2, "huge_weight": 1}, 1),
    "unknown_event_type": ("interactions", "unknown_event_type.csv",
                           {"unknown_event_type": 1, "missing_weight": 1}, 1),
    "exact_and_near_duplicates": ("interactions", "duplicates.csv",
                                  {"duplicate_event": 2, "near_duplicate_event": 1}, 3),
    "items_missing_from_catalogue": ("interactions", "unknown_items.csv", {"unknown_item": 2}, 1),
    "extra_column": ("interactions", "extra_column.csv", {}, 2),
    "truncated_last_line": ("interactions", "truncated_last_line.csv", {"bad_event_ts": 1}, 2),
    "empty_and_whitespace_text": ("items", "items_empty_text.csv", {"empty_text": 2}, 3),
    "non_utf8_text": ("items", "items_non_utf8.csv", {"invalid_encoding": 1}, 3),
    "duplicate_item_ids": ("items", "items_duplicate_ids.csv", {"duplicate_item_id": 1}, 3),
    "availability_window": ("items", "items_bad_availability.csv", {"bad_availability": 2}, 3),
    "very_long_text": ("items", _long_text_items, {}, 4),
}


def _config(tmp_path: Path, *, interactions: Path = GOOD_INTERACTIONS, items: Path = GOOD_ITEMS,
            interactions_format: str = "csv"):
    return make_config(tmp_path / "lh", 'dataset.kind="files"', f'files.interactions="{interactions}"',
                       f'files.items="{items}"', f'files.interactions_format="{interactions_format}"')


def _fixture(spec, tmp_path: Path) -> Path:
    return spec(tmp_path) if callable(spec) else FIXTURES / spec


def _classified(spark, cfg) -> ingest.Classified:
    """ingest's rules on the configured inputs, as the ingest step applies them (no table written)."""
    raw = load_raw_inputs(spark, cfg)
    return ingest.classify(raw.items, raw.interactions, raw.users, ds=DS, run_id="r", timestamp_unit=raw.timestamp_unit,
                           event_weights=cfg.ingest.event_weights, max_weight=cfg.ingest.max_weight,
                           max_text_chars=cfg.ingest.max_text_chars,
                           duplicate_window_seconds=cfg.ingest.duplicate_window_seconds)


@pytest.mark.parametrize("case", sorted(QUARANTINE_CASES))
def test_bad_rows_are_quarantined_and_counts_reconcile(spark, tmp_path, case):
    entity, spec, expected_reasons, expected_kept = QUARANTINE_CASES[case]
    fixture = _fixture(spec, tmp_path)
    classified = _classified(spark, _config(tmp_path, **{entity: fixture}))

    quarantine = classified.quarantined.collect()
    assert all(Path(r[S.SOURCE].removeprefix("file:")).name == fixture.name for r in quarantine)
    assert all(r[S.ENTITY] == entity and r[S.RECORD].startswith("{") for r in quarantine)
    assert Counter(r[S.REASON] for r in quarantine) == Counter(expected_reasons)
    # Per source file (what the step records in `runs`): read = kept + quarantined.
    [counts] = [r for r in ingest.count_by_source(getattr(classified, entity)).collect()
                if r[S.SOURCE].endswith(fixture.name)]
    bad = sum(expected_reasons.values())
    assert (counts["read"], counts["kept"], counts["quarantined"]) == (expected_kept + bad, expected_kept, bad)
    kept = classified.items_kept if entity == "items" else classified.interactions_kept
    assert kept.where(F.col(S.SOURCE).endswith(fixture.name)).count() == expected_kept


def test_the_ingest_step_records_per_source_counts_in_runs(spark, tmp_path):
    """The audit trail, read back from the `runs` table, for one bad-input file run through the step."""
    entity, fixture, expected_reasons, expected_kept = "interactions", FIXTURES / "bad_timestamps.csv", \
        QUARANTINE_CASES["timestamps"][2], QUARANTINE_CASES["timestamps"][3]
    cfg = _config(tmp_path, interactions=fixture)
    ctx = RunContext(spark=spark, cfg=cfg, ds=DS)
    run_steps(ctx, ("ingest",))
    quarantine = read_table(spark, cfg.lakehouse.root, S.QUARANTINE, ds=DS.isoformat()).collect()
    assert Counter(r[S.REASON] for r in quarantine) == Counter(expected_reasons)
    runs = read_table(spark, cfg.lakehouse.root, S.RUNS).where(
        (F.col(S.RUN_ID) == ctx.run_id) & (F.col("status") == "succeeded")).collect()
    counts = dict(runs[0]["row_counts"])
    source = next(k.split(":", 1)[1] for k in counts if k.startswith(f"{entity}_read:"))
    assert source.endswith(fixture.name)
    bad = sum(expected_reasons.values())
    assert counts[f"{entity}_read:{source}"] == expected_kept + bad
    assert counts[f"{entity}_kept:{source}"] == expected_kept
    assert counts[f"{entity}_quarantined:{source}"] == bad
    for name in ("items", "interactions"):
        assert counts[f"{name}_read"] == counts[f"{name}_kept"] + counts[f"{name}_quarantined"]
    assert counts["quarantined"] == len(quarantine)


def test_availability_windows_are_kept_as_timestamps(spark, tmp_path):
    fixture = FIXTURES / "items_bad_availability.csv"
    kept = _classified(spark, _config(tmp_path, items=fixture)).items_kept.collect()
    windows = {r[S.ITEM_ID]: (r[S.AVAILABLE_FROM], r[S.AVAILABLE_TO]) for r in kept}
    assert windows == {"a": (datetime(2026, 1, 1), None), "b": (None, datetime(2027, 1, 1)), "c": (None, None)}


def test_very_long_text_is_cut_on_purpose_and_counted(spark, tmp_path):
    cfg = _config(tmp_path, items=_long_text_items(tmp_path))
    ctx = RunContext(spark=spark, cfg=cfg, ds=DS)
    run_steps(ctx, ("ingest",))
    items = read_table(spark, cfg.lakehouse.root, S.ITEMS, ds=DS.isoformat())
    lengths = {r[S.ITEM_ID]: r["n"] for r in items.select(S.ITEM_ID, F.length(S.TEXT).alias("n")).collect()}
    assert lengths["long"] == cfg.ingest.max_text_chars == 4000
    assert max(n for item, n in lengths.items() if item != "long") < 100
    assert ctx.records[0].row_counts[ingest.TEXT_TRUNCATED] == 1


def _wrong_type_ids(tmp_path: Path) -> Path:
    # pandas turns an integer column with a gap into float64: ids 12.0 would never match "12"
    path = tmp_path / "interactions_float_ids.parquet"
    pd.DataFrame({"user_id": [1.0, None], "item_id": ["a", "b"], "event_ts": ["2026-11-01T10:00:00Z"] * 2,
                  "weight": [1.0, 1.0]}).to_parquet(path)
    return path


# case: (fixture, error type, words the message must contain besides the file name)
ERROR_CASES = {
    "missing_column": ("missing_column.csv", MissingColumnError, ["event_ts"]),
    "wrong_delimiter": ("wrong_delimiter.csv", MissingColumnError, ["item_id", "delimited"]),
    "header_only": ("header_only.csv", EmptyInputError, ["no rows"]),
    "zero_bytes": ("zero_bytes.csv", EmptyInputError, ["empty"]),
    "path_does_not_exist": ("no_such_file.csv", SourceNotFoundError, ["does not exist"]),
    "ids_of_wrong_type": (_wrong_type_ids, InputTypeError, ["user_id", "double"]),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_unreadable_inputs_fail_naming_file_and_column(spark, tmp_path, case):
    spec, error, words = ERROR_CASES[case]
    fixture = _fixture(spec, tmp_path)
    fmt = "parquet" if fixture.suffix == ".parquet" else "csv"
    cfg = _config(tmp_path, interactions=fixture, interactions_format=fmt)
    with pytest.raises(error) as caught:
        run_steps(RunContext(spark=spark, cfg=cfg, ds=DS), ("ingest",))
    message = str(caught.value)
    assert fixture.name in message and all(w in message for w in words), message
    assert table_version(spark, cfg.lakehouse.root, S.ITEMS) is None  # nothing was written
    runs = read_table(spark, cfg.lakehouse.root, S.RUNS).collect()
    assert sorted((r["step"], r["status"]) for r in runs) == [("ingest", "failed"), ("ingest", "running")]
    failed = [r for r in runs if r["status"] == "failed"]
    assert error.__name__ in failed[0]["message"]
