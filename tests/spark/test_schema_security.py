"""Schema changes and versions of the output tables; the security basics (weights, secrets, deletes);
the Delta maintenance commands (vacuum, optimize) and their safety rules."""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import types as T

from conftest import TEST_SETTINGS
from hybridrec import cli
from hybridrec import schema as S
from hybridrec.config import load_config, log_config
from hybridrec.errors import SchemaMismatchError, UnsafePathError, VacuumRefusedError
from hybridrec.io.delta import read_table, write_table
from hybridrec.io.maintenance import optimize_lakehouse, vacuum_lakehouse
from hybridrec.io.storage import table_path

REPO = Path(__file__).resolve().parents[2]
DS = date(2026, 11, 22)


def _factors(spark, spec, users, value=1.0, ds=DS):
    rows = [(u, [value, value], ds, *([None] * (len(spec.columns) - 3))) for u in users]
    return spark.createDataFrame(rows, spec.schema)


def _vacuum(spark, root, **kwargs):
    return {r.table: r for r in vacuum_lakehouse(spark, str(root), min_retention_hours=0, **kwargs)}


def _with_field(spec: S.TableSpec, field: T.StructField) -> S.TableSpec:
    return dataclasses.replace(spec, schema=T.StructType([*spec.schema.fields, field]))


def test_changed_output_schema_is_refused_unless_migration_is_allowed(spark, tmp_path):
    root = str(tmp_path)
    write_table(_factors(spark, S.USER_FACTORS, ["a"]), root, S.USER_FACTORS, run_id="r1", ds=DS)
    wider = _with_field(S.USER_FACTORS, T.StructField("norm", T.DoubleType(), True, {"comment": "Factor norm."}))
    with pytest.raises(SchemaMismatchError, match="--migrate-schema") as refused:
        write_table(_factors(spark, wider, ["b"]), root, wider, run_id="r2", ds=DS)
    assert "norm" in str(refused.value)
    write_table(_factors(spark, wider, ["b"], ds=date(2026, 11, 23)), root, wider, run_id="r3",
                ds=date(2026, 11, 23), allow_schema_migration=True)
    rows = {r.user_id: r.norm for r in read_table(spark, root, wider).collect()}
    assert rows == {"a": None, "b": None}  # older rows read the new column as null
    stored = {f.name: f.metadata.get("comment") for f in spark.read.format("delta")
              .load(table_path(root, "user_factors")).schema.fields}
    assert stored["norm"] == "Factor norm."  # the migration keeps the contract's comment
    retyped = dataclasses.replace(S.USER_FACTORS, schema=T.StructType(
        [T.StructField(S.USER_ID, T.LongType(), False), *S.USER_FACTORS.schema.fields[1:]]))
    with pytest.raises(SchemaMismatchError, match="rebuild"):  # not additive: refused even with the flag
        write_table(spark.createDataFrame([], retyped.schema), root, retyped, run_id="r4", ds=DS,
                    allow_schema_migration=True)


def test_time_travel_to_the_previous_night_after_a_rerun(spark, tmp_path):
    root = str(tmp_path)
    first = write_table(_factors(spark, S.USER_FACTORS, ["a", "b"], 1.0), root, S.USER_FACTORS, run_id="night", ds=DS)
    write_table(_factors(spark, S.USER_FACTORS, ["a", "b", "c"], 2.0), root, S.USER_FACTORS, run_id="rerun", ds=DS)
    now = read_table(spark, root, S.USER_FACTORS).collect()
    before = read_table(spark, root, S.USER_FACTORS, version=first.version).collect()
    assert sorted((r.user_id, r.features[0]) for r in now) == [("a", 2.0), ("b", 2.0), ("c", 2.0)]
    assert sorted((r.user_id, r.features[0]) for r in before) == [("a", 1.0), ("b", 1.0)]


def test_secrets_in_config_never_reach_the_log(caplog):
    cfg = load_config(overrides=['spark.conf={"spark.hadoop.fs.s3a.secret.key"="s3cr3t-value", '
                                 '"spark.hadoop.fs.s3a.endpoint"="https://bob:hunter2@minio.local"}'])
    with caplog.at_level(logging.INFO, logger="hybridrec"):
        log_config(cfg)
    assert "fs.s3a.secret.key" in caplog.text
    assert "s3cr3t-value" not in caplog.text and "hunter2" not in caplog.text


def test_no_credentials_committed():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    patterns = [re.compile(p) for p in (
        r"AKIA[0-9A-Z]{16}",                                         # AWS access key id
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
        r"(?i)(password|passwd|secret|token)\s*[=:]\s*['\"][^'\"\s{}]{6,}['\"]",
        r"://[^/\s:@]+:[^/\s@]{3,}@",                                 # user:password@host in a URL
    )]
    checked = [f for f in files if f.endswith((".py", ".toml", ".md", ".cfg", ".ini", ".yaml", ".yml", ".json"))
               and f != "tests/spark/test_schema_security.py" and (REPO / f).exists()]
    assert any(f.startswith("airflow_dags/") for f in checked) and any(f.endswith(".toml") for f in checked)
    leaks = [(f, p.pattern) for f in checked for p in patterns if p.search((REPO / f).read_text(errors="ignore"))]
    assert leaks == []


def test_vacuum_never_deletes_outside_the_table_folder(spark, tmp_path):
    root = tmp_path / "lh"
    write_table(_factors(spark, S.USER_FACTORS, ["a"]), str(root), S.USER_FACTORS, run_id="r", ds=DS)
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.parquet").write_bytes(b"not yours")
    (Path(table_path(str(root), "user_factors")) / "ds=2026-01-01").symlink_to(outside)
    reports = _vacuum(spark, root, retention_hours=0, dry_run=False)
    assert reports["user_factors"].refused == ["ds=2026-01-01/data.parquet"] and not reports["user_factors"].deleted
    assert (outside / "data.parquet").read_bytes() == b"not yours"
    assert read_table(spark, str(root), S.USER_FACTORS).count() == 1
    for bad_root in ("/", str(Path.home())):
        with pytest.raises(UnsafePathError, match="dedicated folder"):
            vacuum_lakehouse(spark, bad_root, retention_hours=0, dry_run=True, min_retention_hours=0)
    with pytest.raises(VacuumRefusedError, match="vacuum_min_retention_hours=24"):
        vacuum_lakehouse(spark, str(root), retention_hours=2, dry_run=True, min_retention_hours=24)


def test_vacuum_command_is_a_dry_run_unless_told(spark, tmp_path, capsys):
    root = tmp_path / "lh"
    write_table(_factors(spark, S.USER_FACTORS, ["a"]), str(root), S.USER_FACTORS, run_id="r", ds=DS)
    orphan = Path(table_path(str(root), "user_factors")) / f"ds={DS}" / "part-killed.parquet"
    shutil.copy(next(orphan.parent.glob("*.parquet")), orphan)
    settings = [a for s in (*TEST_SETTINGS, f'lakehouse.root="{root}"', "lakehouse.vacuum_min_retention_hours=0")
                for a in ("--set", s)]
    assert cli.main(["vacuum", *settings, "--retention-hours", "0"]) == 0
    assert f"would delete ds={DS}/part-killed.parquet" in capsys.readouterr().out and orphan.exists()
    assert cli.main(["vacuum", *settings, "--retention-hours", "1", "--execute"]) == 0 and orphan.exists()  # too young
    assert cli.main(["vacuum", *settings, "--retention-hours", "0", "--execute"]) == 0
    assert "deleted 1" in capsys.readouterr().out and not orphan.exists()
    assert read_table(spark, str(root), S.USER_FACTORS).count() == 1


def test_optimize_compacts_a_night_into_one_file_z_ordered_by_user(spark, tmp_path):
    root = str(tmp_path / "lh")
    for n in range(3):  # three nights' worth of small files in one partition (appends to embeddings-like table)
        night = date(2026, 11, 20 + n)
        write_table(_factors(spark, S.USER_FACTORS, [f"u{n}{i}" for i in range(5)], ds=night).repartition(3), root,
                    S.USER_FACTORS, run_id=f"r{n}", ds=night)
    before = read_table(spark, root, S.USER_FACTORS).orderBy(S.USER_ID).collect()
    [report] = optimize_lakehouse(spark, root, tables=["user_factors"], zorder=True)
    assert report.zorder_by == "user_id" and report.files_removed == 9 and report.files_added == 3
    assert read_table(spark, root, S.USER_FACTORS).orderBy(S.USER_ID).collect() == before
    from delta.tables import DeltaTable
    last = DeltaTable.forPath(spark, table_path(root, "user_factors")).history(1).first()
    assert last["operation"] == "OPTIMIZE" and "user_id" in last["operationParameters"]["zOrderBy"]
    with pytest.raises(ValueError, match="unknown table"):
        optimize_lakehouse(spark, root, tables=["nope"])
