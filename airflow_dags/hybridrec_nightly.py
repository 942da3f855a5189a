"""
### hybridrec nightly

Computes one night of recommendations for the run's logical date (`{{ ds }}`), each step a
`spark-submit` of `jobs/<step>.py`:

`ingest` -> (`embed_items`, `train_als`) -> `gate` -> `recommend` -> `summary`

* `gate` evaluates all strategies on a holdout of the night's interactions and fails the task
  (nothing published) when the hybrid falls below ALS alone or too far below the last published
  night. It runs before `recommend` because `recommend` *is* the publish step: it writes the
  night's `recommendations` partition in one atomic Delta commit, so analysts never see a
  half-written or unvetted night. `ingest` refuses an input with too many quarantined rows, and
  `recommend` checks the night against the last published one (`data_quality` table) before its
  commit. Trigger with `{"force": true}` to go past any of these refusals (recorded in `runs`).
* Every step replaces only its own `ds` partition, so clearing and re-running any task is safe.

Settings (environment of the workers): see `hybridrec.orchestration` and the README.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from hybridrec.orchestration import spark_submit

with DAG(
    dag_id="hybridrec_nightly",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=10), "execution_timeout": timedelta(hours=3)},
    params={"force": Param(False, type="boolean",
                           description="go past the quarantine limit, the quality gate and the guardrails")},
    tags=["hybridrec", "spark", "recommendations"],
    doc_md=__doc__,
):
    force = "--force={{ params.force }}"
    ingest = spark_submit("ingest", force)
    embed_items = spark_submit("embed_items")
    train_als = spark_submit("train_als")
    gate = spark_submit("gate", force)
    gate.retries = 0  # a refused night is a verdict, not a transient failure
    recommend = spark_submit("recommend", force)
    summary = spark_submit("summary")

    ingest >> [embed_items, train_als] >> gate >> recommend >> summary
