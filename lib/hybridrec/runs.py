"""Run ids and the `runs` table: one row per step with timing, status and row counts."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from hybridrec.io.delta import append_rows
from hybridrec.schema import RUNS

log = logging.getLogger(__name__)


def new_run_id(ds: date) -> str:
    return f"{ds:%Y%m%d}-{uuid.uuid4().hex[:12]}"


@dataclass
class StepRecord:
    step: str
    seconds: float = 0.0
    status: str = "running"
    row_counts: dict[str, int] = field(default_factory=dict)
    message: str | None = None    # a note for the audit trail (failed steps get the error)


@contextmanager
def recorded_step(lakehouse_root: str, run_id: str, ds: date, step: str) -> Iterator[StepRecord]:
    """Times the step and appends its row to `runs`, as succeeded or failed (then re-raises)."""
    record = StepRecord(step)
    started_at = datetime.now(UTC)  # wall clock for the audit trail only, never logic
    start = time.perf_counter()
    log.info("step %s: started (run %s, ds %s)", step, run_id, ds)
    try:
        yield record
        record.status = "succeeded"
    except BaseException as exc:
        record.status = "failed"
        record.message = f"{type(exc).__name__}: {exc}"[:4000]
        raise
    finally:
        record.seconds = time.perf_counter() - start
        append_rows([{
            "run_id": run_id, "ds": ds, "step": step, "started_at": started_at,
            "ended_at": datetime.now(UTC), "status": record.status,
            "row_counts": record.row_counts, "message": record.message,
        }], lakehouse_root, RUNS, run_id=run_id)
        log.info("step %s: %s in %.1fs %s", step, record.status, record.seconds, record.row_counts)
