"""Guardrails before the publish: tonight's inputs and lists against the last published night (and
fixed limits), every result stored in `data_quality`, the publish refused on a failure unless forced.
Called by the recommend step between scoring and its one commit of `recommendations`."""

from __future__ import annotations

import logging
from datetime import date

import numpy as np
from pyspark.ml.feature import Bucketizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from hybridrec import schema as S
from hybridrec.config import CHANGE_CHECKS
from hybridrec.errors import GuardrailError
from hybridrec.io.delta import partitions, read_table
from hybridrec.quality import guardrails as G
from hybridrec.steps.context import RunContext
from hybridrec.steps.runs import StepRecord

log = logging.getLogger(__name__)
_DECILES = [i / 10 for i in range(1, 10)]


def night_figures(ctx: RunContext, interactions: DataFrame, lists: DataFrame) -> dict[str, float]:
    """The night-over-night figures: input sizes, the catalogue's share without interactions, and the
    share of known users that get a list."""
    row = interactions.agg(F.count(F.lit(1)).alias("n"), F.countDistinct(S.USER_ID).alias("users"),
                           F.countDistinct(S.ITEM_ID).alias("items")).first()
    n_items = ctx.read(S.ITEMS).count()
    known_users = ctx.read(S.USERS).count()
    with_lists = lists.select(S.USER_ID).distinct().count()
    return {"interactions": row["n"], "users": row["users"], "items": n_items,
            "new_item_share": 1 - row["items"] / n_items if n_items else 0.0,
            "users_with_recommendations": with_lists / known_users if known_users else 0.0}


def quarantined_shares(ctx: RunContext, kept: dict[str, int]) -> dict[str, float]:
    """entity -> share of its rows read tonight that ingest quarantined."""
    quarantined = {r[S.ENTITY]: r["n"] for r in ctx.read(S.QUARANTINE, required=False)
                   .groupBy(S.ENTITY).agg(F.count(F.lit(1)).alias("n")).collect()}
    return {e: quarantined.get(e, 0) / max(1, quarantined.get(e, 0) + n) for e, n in kept.items()}


def score_histograms(ctx: RunContext, lists: DataFrame, baseline_ds: date) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the last published night's and tonight's hybrid scores in the last night's deciles."""
    def hybrid(df: DataFrame) -> DataFrame:
        return df.where(F.col(S.STRATEGY) == S.HYBRID).select(S.SCORE)

    before = hybrid(read_table(ctx.spark, ctx.root, S.RECOMMENDATIONS, ds=baseline_ds))
    edges = sorted(set(before.approxQuantile(S.SCORE, _DECILES, 0.001)))
    bucketizer = Bucketizer(splits=[-np.inf, *edges, np.inf], inputCol=S.SCORE, outputCol="bin")

    def counts(df: DataFrame) -> np.ndarray:
        out = np.zeros(len(edges) + 1)
        for r in bucketizer.transform(df).groupBy("bin").count().collect():
            out[int(r["bin"])] = r["count"]
        return out

    return counts(before), counts(hybrid(lists))


def night_checks(ctx: RunContext, interactions: DataFrame, lists: DataFrame) -> tuple[list[G.CheckResult], date | None]:
    """Every guardrail's result for tonight, and the published night it compared with."""
    g = ctx.cfg.guardrails
    figures = night_figures(ctx, interactions, lists)
    published = [d for d in partitions(ctx.spark, ctx.root, S.RECOMMENDATIONS) if d < ctx.ds]
    baseline_ds = published[-1] if published else None
    baseline = {}
    if baseline_ds is not None:
        stored = read_table(ctx.spark, ctx.root, S.DATA_QUALITY, ds=baseline_ds, required=False)
        baseline = {r["check"]: r["value"] for r in stored.collect() if r["value"] is not None}
    results = [G.change_check(name, float(figures[name]), baseline.get(name), g.change[name])
               for name in CHANGE_CHECKS if name in g.change]
    kept = {"interactions": int(figures["interactions"]), "items": int(figures["items"])}
    for entity, share in quarantined_shares(ctx, kept).items():
        results.append(G.limit_check(f"{entity}_quarantined_share", share, g.max_quarantined_share, "fail",
                                     "guardrails.max_quarantined_share"))
    if baseline_ds is None:
        results.append(G.CheckResult(G.SCORE_PSI, None, G.NO_BASELINE, "score_psi: no earlier published night"))
    else:
        psi = G.population_stability_index(*score_histograms(ctx, lists, baseline_ds))
        results.append(G.limit_check(G.SCORE_PSI, psi, g.max_score_psi, g.score_psi_on_breach, "guardrails.max_score_psi"))
    return results, baseline_ds


def guard_night(ctx: RunContext, record: StepRecord, interactions: DataFrame, lists: DataFrame) -> tuple[str, str]:
    """Check, store in `data_quality`, and raise GuardrailError on a failure unless forced; returns
    notes for the step's message: (what was forced, what warned), '' when nothing."""
    results, baseline_ds = night_checks(ctx, interactions, lists)
    results, failures = G.verdict(results, ctx.force)
    rows = [{S.DS: ctx.ds, S.RUN_ID: ctx.run_id, "check": r.check, "value": r.value, "baseline": r.baseline,
             "baseline_ds": baseline_ds if r.baseline is not None else None, "lower_bound": r.lower_bound,
             "upper_bound": r.upper_bound, "status": r.status, "message": r.message} for r in results]
    ctx.write(ctx.spark.createDataFrame(rows, S.DATA_QUALITY.schema), S.DATA_QUALITY)
    warned = [r.message for r in results if r.status == G.WARNED]
    record.row_counts.update({"data_quality_checks": len(results), "guardrail_failures": len(failures),
                              "guardrail_warnings": len(warned)})
    for message in warned:
        log.warning("guardrail warning: %s", message)
    if failures and not ctx.force:
        raise GuardrailError("guardrails refused to publish the night (see data_quality; --force publishes anyway): "
                             + "; ".join(failures))
    forced = ""
    if failures:
        record.row_counts["guardrails_forced"] = 1
        forced = "FORCED past the guardrails: " + "; ".join(failures) + ". "
        log.warning("%s", forced)
    return forced, (" Guardrails warned: " + "; ".join(warned) if warned else "")
