"""Schema changes and versions of the output tables; the security basics (weights, secrets, deletes)."""

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

from hybridrec import cli, embed
from hybridrec import schema as S
from hybridrec.config import load_config, log_config
from hybridrec.errors import SchemaMismatchError, UnsafePathError
from hybridrec.io.delta import read_table, table_path, write_table
from hybridrec.io.vacuum import vacuum_lakehouse

REPO = Path(__file__).resolve().parents[1]
DS = "2026-11-22"


def _factors(spark, spec, users, value=1.0):
    rows = [(u, [value, value], date.fromisoformat(DS), *([None] * (len(spec.columns) - 3))) for u in users]
    return spark.createDataFrame(rows, spec.schema)


def _with_field(spec: S.TableSpec, field: T.StructField) -> S.TableSpec:
    return dataclasses.replace(spec, schema=T.StructType([*spec.schema.fields, field]))


def test_changed_output_schema_is_refused_unless_migration_is_allowed(spark, tmp_path):
    root = str(tmp_path)
    write_table(_factors(spark, S.USER_FACTORS, ["a"]), root, S.USER_FACTORS, run_id="r1", partition_value=DS)
    wider = _with_field(S.USER_FACTORS, T.StructField("norm", T.DoubleType(), True, {"comment": "Factor norm."}))
    with pytest.raises(SchemaMismatchError, match="--migrate-schema") as refused:
        write_table(_factors(spark, wider, ["b"]), root, wider, run_id="r2", partition_value="2026-11-22")
    assert "norm" in str(refused.value)
    write_table(_factors(spark, wider, ["b"]), root, wider, run_id="r3", partition_value=DS,
                allow_schema_migration=True)
    assert read_table(spark, root, wider).collect()[0]["norm"] is None  # old files read the new column as null
    retyped = dataclasses.replace(S.USER_FACTORS, schema=T.StructType(
        [T.StructField(S.USER_ID, T.LongType(), False), *S.USER_FACTORS.schema.fields[1:]]))
    with pytest.raises(SchemaMismatchError, match="rebuild"):  # not additive: refused even with the flag
        write_table(spark.createDataFrame([], retyped.schema), root, retyped, run_id="r4", partition_value=DS,
                    allow_schema_migration=True)


def test_time_travel_to_the_previous_night_after_a_rerun(spark, tmp_path):
    root = str(tmp_path)
    first = write_table(_factors(spark, S.USER_FACTORS, ["a", "b"], 1.0), root, S.USER_FACTORS, run_id="night",
                        partition_value=DS)
    write_table(_factors(spark, S.USER_FACTORS, ["a", "b", "c"], 2.0), root, S.USER_FACTORS, run_id="rerun",
                partition_value=DS)
    now = read_table(spark, root, S.USER_FACTORS).collect()
    before = read_table(spark, root, S.USER_FACTORS, version=first.version).collect()
    assert sorted((r.user_id, r.features[0]) for r in now) == [("a", 2.0), ("b", 2.0), ("c", 2.0)]
    assert sorted((r.user_id, r.features[0]) for r in before) == [("a", 1.0), ("b", 1.0)]


def test_model_weights_load_only_from_safetensors(tmp_path):
    import torch

    bundled = Path(embed.bundled_model_path())
    assert embed.load_model(str(bundled)) is not None
    pickled = tmp_path / "pickled-model"
    shutil.copytree(bundled, pickled, ignore=shutil.ignore_patterns("*.safetensors", "onnx", "openvino"))
    _, model = embed.load_model(str(bundled))
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")  # a pickle: must never be loaded
    with pytest.raises(OSError, match="safetensors"):
        embed.load_model(str(pickled))


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
               and f != "tests/test_schema_security.py"]
    assert any(f.startswith("airflow_dags/") for f in checked) and any(f.endswith(".toml") for f in checked)
    leaks = [(f, p.pattern) for f in checked for p in patterns if p.search((REPO / f).read_text(errors="ignore"))]
    assert leaks == []


def test_vacuum_never_deletes_outside_the_table_folder(spark, tmp_path):
    root = tmp_path / "lh"
    write_table(_factors(spark, S.USER_FACTORS, ["a"]), str(root), S.USER_FACTORS, run_id="r", partition_value=DS)
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.parquet").write_bytes(b"not yours")
    (Path(table_path(str(root), S.USER_FACTORS)) / "ds=2026-01-01").symlink_to(outside)
    reports = {r.table: r for r in vacuum_lakehouse(str(root), retention_hours=0, dry_run=False)}
    assert reports["user_factors"].refused == ["ds=2026-01-01/data.parquet"]
    assert (outside / "data.parquet").read_bytes() == b"not yours"
    assert read_table(spark, str(root), S.USER_FACTORS).count() == 1
    for bad_root in ("/", str(Path.home())):
        with pytest.raises(UnsafePathError, match="dedicated folder"):
            vacuum_lakehouse(bad_root, retention_hours=0, dry_run=True)


def test_vacuum_command_is_a_dry_run_unless_told(spark, tmp_path, capsys):
    root = tmp_path / "lh"
    write_table(_factors(spark, S.USER_FACTORS, ["a"]), str(root), S.USER_FACTORS, run_id="r", partition_value=DS)
    orphan = Path(table_path(str(root), S.USER_FACTORS)) / f"ds={DS}" / "part-killed.parquet"
    shutil.copy(next(orphan.parent.glob("*.parquet")), orphan)
    args = ["vacuum", "--set", f'lakehouse.root="{root}"', "--retention-hours", "0"]
    assert cli.main(args) == 0
    assert "would delete" in capsys.readouterr().out and orphan.exists()
    assert cli.main([*args[:3], "--retention-hours", "1", "--execute"]) == 0 and orphan.exists()  # too young
    assert cli.main([*args, "--execute"]) == 0
    assert "deleted 1" in capsys.readouterr().out and not orphan.exists()
    assert read_table(spark, str(root), S.USER_FACTORS).count() == 1
