"""The nightly steps, in order: ingest -> embed_items, train_als -> gate -> recommend -> summary.

Steps are the only code that reads and writes tables (through the RunContext, i.e. hybridrec.io).
Each step reads its inputs from the lakehouse for the run date, so any step can be re-run alone,
and every write replaces, appends or merges in one Delta commit tagged with the run id.
"""

from __future__ import annotations

from collections.abc import Callable

from hybridrec.steps.context import RunContext
from hybridrec.steps.embed_items import embed_items_step
from hybridrec.steps.gate import gate_step
from hybridrec.steps.ingest import ingest_step
from hybridrec.steps.recommend import recommend_step
from hybridrec.steps.runs import StepRecord, recorded_step
from hybridrec.steps.summary import summary_step
from hybridrec.steps.train_als import train_als_step

STEPS = ("ingest", "embed_items", "train_als", "gate", "recommend", "summary")
# Steps that can refuse a night, and so take --force: ingest (quarantined share), gate (quality),
# recommend (night-over-night guardrails).
FORCEABLE_STEPS = ("ingest", "gate", "recommend")

STEP_FUNCTIONS: dict[str, Callable[[RunContext, StepRecord], None]] = {
    "ingest": ingest_step,
    "embed_items": embed_items_step,
    "train_als": train_als_step,
    "gate": gate_step,
    "recommend": recommend_step,
    "summary": summary_step,
}

__all__ = ["FORCEABLE_STEPS", "STEPS", "RunContext", "run_step", "run_steps"]


def run_step(ctx: RunContext, step: str, function=None) -> StepRecord:
    """One step under the run's id: claimed and recorded in `runs` (see hybridrec.runs)."""
    with recorded_step(ctx.spark, ctx.root, ctx.run_id, ctx.ds, step, database=ctx.database) as record:
        ctx.records.append(record)
        ctx.step = record
        try:
            (function or STEP_FUNCTIONS[step])(ctx, record)
        finally:
            ctx.step = None
    return record


def run_steps(ctx: RunContext, steps: tuple[str, ...] = STEPS) -> None:
    """Run `steps` in order under one run id; stops at the first failure (recorded in `runs`)."""
    for step in steps:
        run_step(ctx, step)
