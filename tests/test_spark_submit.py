"""`spark-submit jobs/nightly.py` end to end on a tiny synthetic dataset, as a cluster would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

REPO = Path(__file__).resolve().parents[1]
N_USERS, N_ROSTER_ONLY, TOP_N = 60, 5, 10


@pytest.mark.slow
def test_spark_submit_nightly_on_synthetic(tmp_path):
    lakehouse = tmp_path / "lakehouse"
    settings = [
        'dataset.kind="synthetic"', f"synthetic.n_users={N_USERS}", "synthetic.n_items=80",
        "synthetic.n_interactions=900", f"synthetic.n_users_without_history={N_ROSTER_ONLY}",
        f'lakehouse.root="{lakehouse}"', f"recommend.top_n={TOP_N}", "recommend.new_item_slots=3",
        "als.rank=8", "als.max_iter=4",
        "spark.shuffle_partitions=2",
    ]
    config = tmp_path / "my.toml"
    config.write_text('[spark]\nconf = { "spark.ui.enabled" = "false" }\n')
    spark_submit = Path(sys.executable).parent / "spark-submit"
    jars = subprocess.run([str(Path(sys.executable).parent / "hybridrec"), "jars"], capture_output=True, text=True,
                          check=True).stdout.strip()
    cmd = [str(spark_submit), "--master", "local[2]", "--driver-memory", "2g", "--jars", jars,
           str(REPO / "jobs" / "nightly.py"),
           "--ds", "2026-11-22", "--config", str(config),
           "--force"]  # the gate runs and records its verdict, whichever way 900 random events go
    for s in settings:
        cmd += ["--set", s]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert "top 5 for user" in proc.stdout

    recs = DeltaTable(str(lakehouse / "recommendations")).to_pyarrow_table()
    assert recs.num_rows > 0
    users = set(recs.column("user_id").to_pylist())
    roster_only = {u for u in users if int(u[1:]) >= N_USERS}
    assert len(roster_only) == N_ROSTER_ONLY
    assert recs.num_rows == len(users) * TOP_N
    assert set(pc.unique(recs.column("ds")).to_pylist()).pop().isoformat() == "2026-11-22"
    runs = DeltaTable(str(lakehouse / "runs")).to_pyarrow_table().to_pylist()
    ended = [r for r in runs if r["status"] != "running"]
    assert {r["status"] for r in ended} == {"succeeded"}
    assert sorted(r["step"] for r in ended) == sorted(["ingest", "embed_items", "train_als", "gate", "recommend",
                                                       "summary"])
    metrics = DeltaTable(str(lakehouse / "metrics")).to_pyarrow_table()
    assert set(metrics.column("strategy").to_pylist()) == {"popularity", "als", "content", "hybrid"}
