"""The default MLflow store: a file store next to the tables, written and read back without a server."""

from __future__ import annotations

from datetime import date

import pandas as pd

from hybridrec.config import load_config
from hybridrec.io import tracking


def test_a_night_run_in_the_lakehouse_file_store_holds_params_metrics_and_the_als_model(tmp_path):
    from mlflow import MlflowClient

    cfg = load_config(overrides=[f'lakehouse.root="{tmp_path / "lake"}"', 's3.access_key="AKIA"', 's3.secret_key="hunter2"'])
    uri = tracking.tracking_uri(cfg)
    assert uri == (tmp_path / "lake" / "_mlruns").as_uri()
    run = tracking.start_night(cfg, date(2026, 11, 22), "r1")
    factors = pd.DataFrame({"item_id": ["a", "b"], "features": [[0.1, 0.2], [0.3, 0.4]]})
    tracking.finish_night(cfg, run, metrics={"hybrid.all.ndcg_10": 0.25}, tags={"hybridrec.ranker": "abc"},
                          item_factors=factors, ranker_model="tree 1")
    got = MlflowClient(tracking_uri=uri).get_run(run)
    assert got.info.status == "FINISHED" and got.info.run_name == "2026-11-22 r1"
    assert got.data.metrics == {"hybrid.all.ndcg_10": 0.25}
    assert got.data.params["recommend.top_n"] == str(cfg.recommend.top_n)
    assert got.data.params["s3.secret_key"] == "***"  # secrets never reach the tracking store
    assert got.data.tags["hybridrec.ranker"] == "abc"
    stored = pd.read_parquet(tmp_path / "lake" / "_mlruns" / got.info.experiment_id / run / "artifacts" / "als_model"
                             / "item_factors.parquet")
    assert stored["item_id"].tolist() == ["a", "b"]


def test_a_lakehouse_on_object_storage_needs_a_tracking_uri():
    remote = load_config(overrides=['lakehouse.root="s3a://bucket/lake"'])
    assert tracking.tracking_uri(remote) == ""
    server = load_config(overrides=['lakehouse.root="s3a://bucket/lake"', 'tracking.uri="http://mlflow:5000"'])
    assert tracking.tracking_uri(server) == "http://mlflow:5000"
