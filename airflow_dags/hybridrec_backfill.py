"""
### hybridrec backfill

Triggered by hand with `start` and `end` (dates, inclusive). Runs the whole nightly job
(`jobs/nightly.py`) once per date, oldest first, one at a time; stops at the first failing date.
Each run replaces only its own `ds` partitions, so re-running a range is idempotent: it never
duplicates a night.

`airflow dags trigger hybridrec_backfill --conf '{"start": "2026-11-01", "end": "2026-11-07"}'`
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, task

from hybridrec.orchestration import submit_nightly

with DAG(
    dag_id="hybridrec_backfill",
    schedule=None,
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "start": Param(type="string", format="date", description="first date, YYYY-MM-DD"),
        "end": Param(type="string", format="date", description="last date, YYYY-MM-DD (inclusive)"),
    },
    tags=["hybridrec", "spark", "backfill"],
    doc_md=__doc__,
):

    @task
    def nights(params=None) -> list[str]:
        """Every date from start to end, oldest first."""
        from datetime import date

        start, end = date.fromisoformat(params["start"]), date.fromisoformat(params["end"])
        if end < start:
            raise ValueError(f"backfill: end {end} is before start {start}")
        return [date.fromordinal(d).isoformat() for d in range(start.toordinal(), end.toordinal() + 1)]

    @task(execution_timeout=timedelta(hours=24))
    def run_nights(days: list[str]) -> None:
        """One spark-submit of the nightly job per date, in order."""
        for ds in days:
            submit_nightly(ds)

    run_nights(nights())
