"""The train_als step: ALS user and item factors for the run date, from its interactions."""

from __future__ import annotations

from hybridrec import schema as S
from hybridrec.steps.context import RunContext
from hybridrec.steps.runs import StepRecord
from hybridrec.transforms.als import fit_factors


def train_als_step(ctx: RunContext, record: StepRecord) -> None:
    user_factors, item_factors = fit_factors(ctx.read(S.INTERACTIONS), ctx.cfg.als, ctx.ds)
    record.row_counts["user_factors"] = ctx.write(user_factors, S.USER_FACTORS)
    record.row_counts["item_factors"] = ctx.write(item_factors, S.ITEM_FACTORS)
    user_factors.unpersist()
    item_factors.unpersist()
