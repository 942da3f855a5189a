"""The gate step: evaluate the night on a holdout before anything is published, record the
metrics, and refuse to publish (raise) when the hybrid falls below the gate (quality.gate)."""

from __future__ import annotations

import logging

from hybridrec.errors import QualityGateError
from hybridrec.quality.gate import ALS, HYBRID, gate_failures, metric_value, variant_strategy
from hybridrec.quality.report import print_metrics
from hybridrec.steps.context import RunContext
from hybridrec.steps.evaluation import previous_published_ndcg, run_evaluation, write_metrics
from hybridrec.steps.ranking import write_ranker
from hybridrec.steps.runs import StepRecord

log = logging.getLogger(__name__)


def gate_step(ctx: RunContext, record: StepRecord) -> None:
    """Evaluate on the holdout; refuse to publish (raise) when the hybrid falls below the gate."""
    gate = ctx.cfg.gate
    if not gate.enabled:
        record.message = "gate disabled in config"
        return
    cfg = ctx.cfg
    evaluate = cfg.evaluate.model_copy(update={"ks": sorted({*cfg.evaluate.ks, gate.k}), "max_users": gate.max_users})
    cfg = cfg.model_copy(update={"evaluate": evaluate})
    evaluation = run_evaluation(RunContext(ctx.spark, cfg, ctx.ds, ctx.run_id))
    metrics = evaluation.metrics
    write_metrics(ctx, metrics)
    write_ranker(ctx, evaluation.ranker)  # recommend publishes with the ranker measured here
    print_metrics(metrics)
    previous_ds, previous = previous_published_ndcg(ctx, gate.k)
    failures = gate_failures(metrics, k=gate.k, max_drop_pct=gate.max_drop_pct, previous_ndcg=previous,
                             als_margin_pct=gate.als_margin_pct, ease_margin_pct=gate.ease_margin_pct)
    for v in cfg.experiment.variants:  # every arm's users get lists: each arm passes the same references
        failures += gate_failures(metrics, k=gate.k, max_drop_pct=gate.max_drop_pct, previous_ndcg=None,
                                  als_margin_pct=gate.als_margin_pct, ease_margin_pct=gate.ease_margin_pct,
                                  strategy=variant_strategy(v.name))
    record.row_counts.update({"metrics": len(metrics), "gate_failures": len(failures),
                              "ranker_trained": int(evaluation.ranker.model is not None)})
    hybrid = metric_value(metrics, HYBRID, "ndcg", gate.k)
    last = "none earlier" if previous is None else f"{previous:.4f} on {previous_ds}"
    which = "ranker" if evaluation.ranker.model is not None else "linear blend"
    summary = f"hybrid ({which}) ndcg@{gate.k} {hybrid:.4f} (ALS-only {metric_value(metrics, ALS, 'ndcg', gate.k):.4f}); " \
              f"last published night: {last}"
    if failures and ctx.force:
        record.row_counts["gate_forced"] = 1
        record.message = "FORCED past the quality gate: " + "; ".join(failures)
        log.warning("%s", record.message)
    elif failures:
        raise QualityGateError("quality gate failed, night not published: " + "; ".join(failures))
    else:
        record.message = "gate passed: " + summary
        log.info("%s", record.message)
