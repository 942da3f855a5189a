"""Experiment tracking in MLflow: each published night is one MLflow run holding its parameters
(the validated configuration, secrets masked), its metrics (the gate's evaluation and the publish's
counts), the ALS model (item factors and settings), the ranker model and the item-embedding model's
version; `recommendations.model_version` names that run.

The default store is MLflow's file store in the lakehouse folder (`<root>/_mlruns`; a local
single-machine store: MLflow keeps it in maintenance mode, so shared setups set tracking.uri to a
tracking server or a database). A lakehouse on object storage has no such folder: without
tracking.uri the night is not tracked (warned). Only the driver talks to MLflow.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from hybridrec.config import Config, redact
from hybridrec.io.storage import is_remote

log = logging.getLogger(__name__)


def tracking_uri(cfg: Config) -> str:
    """tracking.uri, or the file store next to the tables when the lakehouse is on local disk; ""
    for a lakehouse on object storage without one (no local folder every driver shares)."""
    if cfg.tracking.uri:
        return cfg.tracking.uri
    if is_remote(cfg.lakehouse.root):
        return ""
    return (Path(cfg.lakehouse.root) / "_mlruns").resolve().as_uri()


def _client(cfg: Config):
    import mlflow

    uri = tracking_uri(cfg)
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow's local store, on purpose (see above)
    return mlflow.MlflowClient(tracking_uri=uri)


def start_night(cfg: Config, ds: date, run_id: str) -> str:
    """A new MLflow run for this night's publish (experiment tracking.experiment); its id."""
    client = _client(cfg)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(cfg.tracking.experiment)
    run = client.create_run(experiment_id, run_name=f"{ds} {run_id}",
                            tags={"hybridrec.ds": str(ds), "hybridrec.run_id": run_id})
    return run.info.run_id


def _flat(prefix: str, value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(f"{prefix}.{key}" if prefix else key, item).items()}
    return {prefix: json.dumps(value) if isinstance(value, list | dict) else str(value)}


def finish_night(cfg: Config, mlflow_run: str, *, metrics: dict[str, float], tags: dict[str, str],
                 item_factors: pd.DataFrame, ranker_model: str | None) -> None:
    """Parameters, metrics, tags and the models' artifacts of the night; the run ends FINISHED."""
    from mlflow.entities import Metric, Param, RunTag

    client = _client(cfg)
    params = [Param(k[:250], v[:6000]) for k, v in sorted(_flat("", redact(cfg.model_dump())).items())]
    for start in range(0, len(params), 100):  # the REST API takes at most 100 params per batch
        client.log_batch(mlflow_run, params=params[start:start + 100])
    client.log_batch(mlflow_run, metrics=[Metric(k, float(v), 0, 0) for k, v in sorted(metrics.items())],
                     tags=[RunTag(k, str(v)) for k, v in sorted(tags.items())])
    with tempfile.TemporaryDirectory(prefix="hybridrec-mlflow-") as folder:
        als = Path(folder) / "als_model"
        als.mkdir()
        item_factors.to_parquet(als / "item_factors.parquet", index=False)
        (als / "settings.json").write_text(json.dumps(cfg.als.model_dump(), indent=2), encoding="utf-8")
        client.log_artifacts(mlflow_run, str(als), "als_model")
        if ranker_model:
            ranker = Path(folder) / "ranker_model.txt"
            ranker.write_text(ranker_model, encoding="utf-8")
            client.log_artifact(mlflow_run, str(ranker), "ranker")
    client.set_terminated(mlflow_run, "FINISHED")


def fail_night(cfg: Config, mlflow_run: str) -> None:
    try:
        _client(cfg).set_terminated(mlflow_run, "FAILED")
    except Exception:  # the night's own error is the one to report
        log.warning("could not mark MLflow run %s failed", mlflow_run, exc_info=True)
