"""Run ids and the `runs` table: a row when a step starts (its claim) and one when it ends.

Claims settle runs of the same step for the same run date that overlap, on local disk and object
storage alike, through the Delta table itself: each `runs` commit carries its (ds, step, status) in
its `userMetadata`, so the table's log orders the claims. Before each write a step reads the commits
made to `runs` after its own claim; if another run claimed the same (ds, step) there and has not
failed it, the newer claim wins and this run stops before writing (ConcurrentRunError). Newest-wins
needs no lock to expire: a killed run's claim never blocks its re-run. Two writes that still meet
inside one Delta commit are refused by Delta's own conflict check (io.delta).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from pyspark.sql import SparkSession

from hybridrec.errors import ConcurrentRunError
from hybridrec.io.delta import append_rows, commits
from hybridrec.io.storage import table_path
from hybridrec.schema import RUNS

log = logging.getLogger(__name__)
RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


def new_run_id(ds: date) -> str:
    return f"{ds:%Y%m%d}-{uuid.uuid4().hex[:12]}"


@dataclass
class StepRecord:
    step: str
    run_id: str = ""
    ds: date | None = None
    started_at: datetime | None = None
    seconds: float = 0.0
    status: str = RUNNING
    row_counts: dict[str, int] = field(default_factory=dict)
    message: str | None = None    # a note for the audit trail (failed steps get the error)
    claim_version: int = -1       # the `runs` version of this step's claim


def _row(record: StepRecord, ended_at: datetime) -> dict:
    return {"run_id": record.run_id, "ds": record.ds, "step": record.step, "started_at": record.started_at,
            "ended_at": ended_at, "status": record.status, "row_counts": record.row_counts, "message": record.message}


@contextmanager
def recorded_step(spark: SparkSession, root: str, run_id: str, ds: date, step: str, *,
                  database: str = "") -> Iterator[StepRecord]:
    """Claims the step (a `running` row), times it, then appends its end row: succeeded, or failed
    (and re-raises)."""
    # Wall clock for the audit trail and the order of claims only, never for what a step computes.
    record = StepRecord(step, run_id, ds, datetime.now(UTC))
    record.claim_version = append_rows(spark, [_row(record, record.started_at)], root, RUNS, run_id=run_id,
                                       database=database, ds=ds, step=step, status=RUNNING)
    start = time.perf_counter()
    log.info("step %s: started (run %s, ds %s)", step, run_id, ds)
    try:
        yield record
        record.status = SUCCEEDED
    except BaseException as exc:
        record.status = FAILED
        record.message = f"{type(exc).__name__}: {exc}"[:4000]
        raise
    finally:
        record.seconds = time.perf_counter() - start
        append_rows(spark, [_row(record, datetime.now(UTC))], root, RUNS, run_id=run_id, database=database,
                    ds=ds, step=step, status=record.status)
        log.info("step %s: %s in %.1fs %s", step, record.status, record.seconds, record.row_counts)


def check_claim(spark: SparkSession, root: str, record: StepRecord, table: str) -> None:
    """Raises ConcurrentRunError when another run claimed this step for this ds after `record`
    (a later commit to `runs`) and has not failed it: the newer run owns the night's output of this step."""
    later = [c.user_metadata for c in commits(spark, table_path(root, RUNS.name), after=record.claim_version)]
    same = [m for m in later if (m.get("ds"), m.get("step")) == (str(record.ds), record.step)
            and m.get("run_id") != record.run_id]
    failed = {m["run_id"] for m in same if m.get("status") == FAILED}
    newer = [m["run_id"] for m in same if m.get("status") == RUNNING and m["run_id"] not in failed]
    if newer:
        raise ConcurrentRunError(
            f"table {table!r}, ds {record.ds}: run {newer[-1]} claimed step {record.step} after this run "
            f"{record.run_id}; the newest run of a step wins, so this run stopped before writing {table!r}")
