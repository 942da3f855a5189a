"""Guardrails before the publish: tonight's inputs and lists against the last published night (and
fixed limits), every result stored in `data_quality`, the publish refused on a failure unless forced.
Called by the recommend step between scoring and its one commit of `recommendations`."""

from __future__ import annotations

import logging
import time
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


def _count(df: DataFrame, name: str) -> DataFrame:
    return df.agg(F.count(F.lit(1)).alias(name))


def night_figures(interactions: DataFrame, items: DataFrame, users: DataFrame, lists: DataFrame,
                  quarantine: DataFrame | None = None) -> dict[str, float]:
    """The night-over-night figures of one night (input sizes, the catalogue's share without
    interactions, the share of known users that get a list) and, given the night's quarantine, the
    rows it holds per input: one Spark job (single-row aggregates, cross-joined)."""
    row = (interactions.agg(F.count(F.lit(1)).alias("interactions"), F.countDistinct(S.USER_ID).alias("users"),
                            F.countDistinct(S.ITEM_ID).alias("touched"))
           .crossJoin(_count(items, "items")).crossJoin(_count(users, "known"))
           .crossJoin(lists.agg(F.countDistinct(S.USER_ID).alias("with_lists"))))
    if quarantine is not None:
        row = row.crossJoin(quarantine.agg(*[F.count(F.when(F.col(S.ENTITY) == e, 1)).alias(f"{e}_quarantined")
                                             for e in ("interactions", "items")]))
    r = row.first().asDict()
    figures = {"interactions": r["interactions"], "users": r["users"], "items": r["items"],
               "new_item_share": 1 - r["touched"] / r["items"] if r["items"] else 0.0,
               "users_with_recommendations": r["with_lists"] / r["known"] if r["known"] else 0.0}
    figures.update({k: v for k, v in r.items() if k.endswith("_quarantined")})
    return {k: float(v) for k, v in figures.items()}


def baseline_figures(ctx: RunContext, baseline_ds: date) -> dict[str, float]:
    """The published night's figures: as `data_quality` stored them, else (a night published before
    the table existed, or its rows removed) computed again from that night's partitions."""
    stored = read_table(ctx.spark, ctx.root, S.DATA_QUALITY, ds=baseline_ds, required=False)
    figures = {r["check"]: r["value"] for r in stored.collect() if r["value"] is not None}
    if all(name in figures for name in CHANGE_CHECKS):
        return figures

    def night(spec: S.TableSpec) -> DataFrame:
        return read_table(ctx.spark, ctx.root, spec, ds=baseline_ds)

    return night_figures(night(S.INTERACTIONS), night(S.ITEMS), night(S.USERS), night(S.RECOMMENDATIONS))


def score_histograms(ctx: RunContext, lists: DataFrame, baseline_ds: date) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the last published night's and tonight's hybrid scores in the last night's deciles."""
    def hybrid(df: DataFrame) -> DataFrame:
        return df.where(F.col(S.STRATEGY) == S.HYBRID).select(S.SCORE)

    before = hybrid(read_table(ctx.spark, ctx.root, S.RECOMMENDATIONS, ds=baseline_ds))
    edges = sorted(set(before.approxQuantile(S.SCORE, _DECILES, 0.001)))
    bucketizer = Bucketizer(splits=[-np.inf, *edges, np.inf], inputCol=S.SCORE, outputCol="bin")
    both = before.withColumn("tonight", F.lit(False)).unionByName(hybrid(lists).withColumn("tonight", F.lit(True)))
    counts = np.zeros((2, len(edges) + 1))
    for r in bucketizer.transform(both).groupBy("tonight", "bin").count().collect():
        counts[int(r["tonight"]), int(r["bin"])] = r["count"]
    return counts[0], counts[1]


def night_checks(ctx: RunContext, interactions: DataFrame, lists: DataFrame) -> tuple[list[G.CheckResult], date | None]:
    """Every guardrail's result for tonight, and the published night it compared with."""
    g = ctx.cfg.guardrails
    quarantine = ctx.read(S.QUARANTINE, required=False)
    figures = night_figures(interactions, ctx.read(S.ITEMS), ctx.read(S.USERS), lists, quarantine)
    published = [d for d in partitions(ctx.spark, ctx.root, S.RECOMMENDATIONS) if d < ctx.ds]
    baseline_ds = published[-1] if published else None
    baseline = {} if baseline_ds is None else baseline_figures(ctx, baseline_ds)
    results = [G.change_check(name, figures[name], baseline.get(name), g.change[name])
               for name in CHANGE_CHECKS if name in g.change]
    for entity in ("interactions", "items"):  # read tonight = kept + quarantined
        bad = figures[f"{entity}_quarantined"]
        results.append(G.limit_check(f"{entity}_quarantined_share", bad / max(1.0, bad + figures[entity]),
                                     g.max_quarantined_share, "fail", "guardrails.max_quarantined_share"))
    if baseline_ds is None:
        results.append(G.CheckResult(G.SCORE_PSI, None, G.NO_BASELINE, "score_psi: no earlier published night"))
    else:
        psi = G.population_stability_index(*score_histograms(ctx, lists, baseline_ds))
        results.append(G.limit_check(G.SCORE_PSI, psi, g.max_score_psi, g.score_psi_on_breach, "guardrails.max_score_psi"))
    return results, baseline_ds


def guard_night(ctx: RunContext, record: StepRecord, interactions: DataFrame, lists: DataFrame) -> tuple[str, str]:
    """Check, store in `data_quality`, and raise GuardrailError on a failure unless forced; returns
    notes for the step's message: (what was forced, what warned), '' when nothing."""
    started = time.perf_counter()
    results, baseline_ds = night_checks(ctx, interactions, lists)
    log.info("guardrails: %d checks against %s in %.1f s", len(results), baseline_ds or "no earlier night",
             time.perf_counter() - started)
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
