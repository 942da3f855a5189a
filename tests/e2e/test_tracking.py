"""MLflow tracking against a real tracking server started on loopback: the night is re-published on a
copy of the published topic lakehouse, then its run is read back through MLflow's client."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from conftest import PUBLISHED_NIGHTS, make_config
from hybridrec import schema as S
from hybridrec.io.delta import read_table
from hybridrec.steps import RunContext, run_steps
from object_store import _free_port, wait_until_up

DS = PUBLISHED_NIGHTS[-1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """`mlflow server` (SQLite backend, local artifact store) on a free loopback port."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(folder / "server.log", "w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts")], stdout=log, stderr=subprocess.STDOUT)
    wait_until_up(f"{url}/health", process, folder / "server.log", "mlflow server", 120)
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_a_published_night_is_one_mlflow_run_the_recommendations_point_at(spark, published_lakehouse, mlflow_server,
                                                                           tmp_path):
    from mlflow import MlflowClient

    root, settings = published_lakehouse
    copy = tmp_path / "lakehouse"
    shutil.copytree(root, copy)
    cfg = make_config(copy, *(s for s in settings if not s.startswith("lakehouse.root")),
                      "tracking.enabled=true", f'tracking.uri="{mlflow_server}"', 'tracking.experiment="nightly-test"',
                      "gate.enabled=true")
    ctx = RunContext(spark=spark, cfg=cfg, ds=date.fromisoformat(DS), force=True)  # the toy night trails EASE
    run_steps(ctx, ("gate", "recommend"))

    versions = {r[0] for r in read_table(spark, str(copy), S.RECOMMENDATIONS, ds=DS).select(S.MODEL_VERSION)
                .distinct().collect()}
    [version] = versions
    mlflow_run = version.rsplit(".mlflow-", 1)[1]
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(mlflow_run)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "nightly-test"
    assert run.data.tags["hybridrec.run_id"] == ctx.run_id and run.data.tags["hybridrec.ds"] == DS
    assert run.data.tags["hybridrec.embedding_model"] == cfg.embedding.model
    assert run.data.params["als.rank"] == str(cfg.als.rank) and run.data.params["recommend.top_n"] == "5"
    gate = read_table(spark, str(copy), S.METRICS, ds=DS).where(f"run_id = '{ctx.run_id}' AND strategy = 'hybrid' "
                                                                 "AND segment = 'all' AND metric = 'ndcg' AND k = 10")
    assert run.data.metrics["hybrid.all.ndcg_10"] == pytest.approx(gate.first()["value"])
    assert run.data.metrics["rows.recommendations"] == read_table(spark, str(copy), S.RECOMMENDATIONS, ds=DS).count()
    artifacts = {a.path for a in client.list_artifacts(mlflow_run, "als_model")}
    assert artifacts == {"als_model/item_factors.parquet", "als_model/settings.json"}
    local = client.download_artifacts(mlflow_run, "als_model/settings.json", str(tmp_path))
    assert json.loads(Path(local).read_text())["rank"] == cfg.als.rank
