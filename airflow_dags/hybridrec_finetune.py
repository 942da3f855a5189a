"""
### hybridrec finetune (weekly)

Adapts the text encoder to what users do (`jobs/finetune.py`, one `spark-submit`): LoRA on
all-MiniLM-L6-v2, trained on pairs of items the same users liked close together, from the training
part of the configured evaluation protocol only. The new version is stored with the lakehouse
(`_models/encoder/<version>`, row in `encoder_versions`) and judged on a validation split against
the frozen encoder; nights after it embed with the newest version that passed. A version that did
not beat the frozen encoder is kept, unused; the task still succeeds (the verdict is in the row).

The driver needs the `finetune` extra (torch, transformers, peft); it trains on the driver's GPU when
torch sees one. Settings: `[finetune]` in the config, and the workers' environment as for the nightly.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from hybridrec.orchestration import spark_submit

with DAG(
    dag_id="hybridrec_finetune",
    schedule="@weekly",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=30), "execution_timeout": timedelta(hours=6)},
    tags=["hybridrec", "spark", "encoder"],
    doc_md=__doc__,
):
    spark_submit("finetune")
