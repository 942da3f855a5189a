"""Run ids and the `runs` table: a row when a step starts (its claim) and one when it ends.

Claims settle runs of the same step for the same run date that overlap, on local disk and object
storage alike, through the Delta table itself: before each write a step checks whether another run
claimed the same (ds, step) after it and has not failed; if so, the newer run wins and this one
stops before writing (ConcurrentRunError). Newest-wins needs no lock to expire: a killed run's claim
never blocks its re-run. Two writes that still meet inside one Delta commit are refused by Delta's
own conflict check (io.delta).
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
from pyspark.sql import functions as F

from hybridrec.errors import ConcurrentRunError
from hybridrec.io.delta import append_rows, read_table
from hybridrec.schema import DS, RUN_ID, RUNS

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
    append_rows(spark, [_row(record, record.started_at)], root, RUNS, run_id=run_id, database=database)
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
        append_rows(spark, [_row(record, datetime.now(UTC))], root, RUNS, run_id=run_id, database=database)
        log.info("step %s: %s in %.1fs %s", step, record.status, record.seconds, record.row_counts)


def check_claim(spark: SparkSession, root: str, record: StepRecord, table: str) -> None:
    """Raises ConcurrentRunError when another run claimed this step for this ds after `record`
    and has not failed it: the newer run owns the night's output of this step."""
    mine = int(record.started_at.timestamp() * 1_000_000)
    rows = (read_table(spark, root, RUNS, required=False)
            .where((F.col(DS) == F.lit(record.ds)) & (F.col("step") == record.step))  # ds: the partition
            .select(RUN_ID, "status", F.unix_micros("started_at").alias("micros")).collect())
    failed = {r[RUN_ID] for r in rows if r["status"] == FAILED}
    newer = sorted((r["micros"], r[RUN_ID]) for r in rows
                   if r["status"] == RUNNING and r[RUN_ID] not in failed and (r["micros"], r[RUN_ID]) > (mine, record.run_id))
    if newer:
        micros, other = newer[-1]
        when = datetime.fromtimestamp(micros / 1e6, UTC).isoformat(timespec="seconds")
        raise ConcurrentRunError(
            f"table {table!r}, ds {record.ds}: run {other} started step {record.step} at {when}, after this run "
            f"{record.run_id}; the newest run of a step wins, so this run stopped before writing {table!r}")
