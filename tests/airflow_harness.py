"""Runs inside a subprocess whose environment configures Airflow (AIRFLOW_HOME, dags folder, the
Spark connection and HYBRIDREC_* settings), so the test process never imports Airflow itself.

  python airflow_harness.py describe            -> JSON: import errors, tasks, upstreams, arguments
  python airflow_harness.py test DAG_ID DATE [CONF_JSON]   -> dag.test(); exit 1 unless it succeeded
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime


def _bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def describe() -> None:
    bag = _bag()
    out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
    for dag_id, dag in bag.dags.items():
        out["dags"][dag_id] = {
            "schedule": str(dag.schedule), "catchup": dag.catchup, "tags": sorted(dag.tags),
            "doc_md": bool(dag.doc_md), "params": sorted(dag.params.keys()),
            "tasks": {t.task_id: {
                "upstream": sorted(t.upstream_task_ids), "retries": t.retries,
                "timeout_s": t.execution_timeout.total_seconds() if t.execution_timeout else None,
                "operator": type(t).__name__,
                "application": getattr(t, "application", None),
                "application_args": getattr(t, "application_args", None),
                "conn_id": getattr(t, "conn_id", None) or getattr(t, "_conn_id", None),
                "jars": getattr(t, "jars", None) or getattr(t, "_jars", None),
            } for t in dag.tasks},
        }
    # The backfill's date expansion, called as Airflow would call the task's function.
    nights = bag.dags["hybridrec_backfill"].get_task("nights").python_callable
    out["backfill_nights"] = nights(params={"start": "2026-11-20", "end": "2026-11-22"})
    try:
        nights(params={"start": "2026-11-22", "end": "2026-11-20"})
    except ValueError as exc:
        out["backfill_bad_range"] = str(exc)
    print(json.dumps(out))


def test(dag_id: str, day: str, conf: str | None) -> int:
    dag = _bag().dags[dag_id]
    logical = datetime.fromisoformat(day).replace(tzinfo=UTC)
    run = dag.test(logical_date=logical, run_conf=json.loads(conf) if conf else None)
    print(f"dag run {dag_id} {day}: {run.state}")
    return 0 if str(run.state).endswith("success") else 1


if __name__ == "__main__":
    if sys.argv[1] == "describe":
        describe()
    else:
        sys.exit(test(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None))
