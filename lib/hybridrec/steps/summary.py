"""The summary step (end of the run, console only): each table's version, time and rows written per
step, sample lists."""

from __future__ import annotations

from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.io.delta import table_version
from hybridrec.io.storage import table_path
from hybridrec.steps.context import RunContext
from hybridrec.steps.runs import StepRecord

SAMPLE_USERS = 3
SAMPLE_RANKS = 5


def _title(title: str | None, item_id: str | None) -> str:
    return f"{title} [{item_id}]" if title else f"[{item_id}]"


def print_summary(ctx: RunContext) -> None:
    catalog = f"  catalog database={ctx.database}" if ctx.database else ""
    lines = ["", f"hybridrec run {ctx.run_id}  ds={ctx.ds_str}  lakehouse={table_path(ctx.root, '')}{catalog}", ""]
    lines.append(f"{'table':<17}{'version':>9}  path")
    for spec in S.TABLES.values():
        version = table_version(ctx.spark, ctx.root, spec)
        lines.append(f"{spec.name:<17}{'-' if version is None else version:>9}  {table_path(ctx.root, spec.name)}")
    done = [r for r in ctx.records if r.step != "summary"]
    if done:
        lines += ["", f"{'step':<13}{'status':<11}{'seconds':>9}  row counts"]
        for r in done:
            lines.append(f"{r.step:<13}{r.status:<11}{r.seconds:>9.1f}  {r.row_counts}")
        lines.append(f"{'total':<24}{sum(r.seconds for r in done):>9.1f}")

    recs = ctx.read(S.RECOMMENDATIONS, required=False)
    items = ctx.read(S.ITEMS, required=False).select(S.ITEM_ID, S.TITLE)
    sample_users = (recs.where(F.col(S.STRATEGY) == "hybrid").select(S.USER_ID).distinct()
                    .orderBy(S.USER_ID).limit(SAMPLE_USERS))
    reason_titles = items.select(F.col(S.ITEM_ID).alias(S.REASON_ITEM_ID), F.col(S.TITLE).alias("reason_title"))
    sample = (recs.join(sample_users, S.USER_ID).where(F.col(S.RANK) <= SAMPLE_RANKS)
              .join(items, S.ITEM_ID, "left").join(reason_titles, S.REASON_ITEM_ID, "left")
              .orderBy(S.USER_ID, S.RANK).collect())
    current = None
    for row in sample:
        if row[S.USER_ID] != current:
            current = row[S.USER_ID]
            lines += ["", f"top {SAMPLE_RANKS} for user {current}:"]
        because = f"  because you liked {_title(row['reason_title'], row[S.REASON_ITEM_ID])}" if row[S.REASON_ITEM_ID] else ""
        parts = [f"{row[S.SCORE]:.2f}"]
        if row[S.ALS_SCORE] is not None:
            parts.append(f"als {row[S.ALS_SCORE]:.3f}")
        if row[S.CONTENT_SCORE] is not None:
            parts.append(f"content {row[S.CONTENT_SCORE]:.3f}")
        lines.append(f"  {row[S.RANK]}. {_title(row[S.TITLE], row[S.ITEM_ID])}  ({', '.join(parts)}){because}")
    print("\n".join(lines), flush=True)


def summary_step(ctx: RunContext, record: StepRecord) -> None:
    print_summary(ctx)
