"""The ingest step: raw inputs in, clean `interactions`, `items`, `users` and `quarantine` out for
the run date; read = kept + quarantined is checked per entity before the step succeeds. An input
with more of its rows quarantined than guardrails allow is refused before anything is written
(unless forced, which `runs` records)."""

from __future__ import annotations

import logging

from hybridrec import schema as S
from hybridrec.errors import QuarantineThresholdError, ReconciliationError
from hybridrec.quality.quarantine import ReasonCount, quarantine_breaches, quarantine_message
from hybridrec.sources import load_raw_inputs
from hybridrec.steps.context import RunContext
from hybridrec.steps.runs import StepRecord
from hybridrec.transforms import ingest

log = logging.getLogger(__name__)


def ingest_step(ctx: RunContext, record: StepRecord) -> None:
    cfg, ds = ctx.cfg, ctx.ds
    raw = load_raw_inputs(ctx.spark, cfg)
    classified = ingest.classify(
        raw.items, raw.interactions, raw.users, ds=ds, run_id=ctx.run_id, timestamp_unit=raw.timestamp_unit,
        event_weights=cfg.ingest.event_weights, max_weight=cfg.ingest.max_weight,
        max_text_chars=cfg.ingest.max_text_chars, duplicate_window_seconds=cfg.ingest.duplicate_window_seconds,
        user_text_fields=tuple(cfg.ingest.user_text_fields))
    # Cached: the kept and quarantined frames and the counts below all derive from these two plans,
    # and Spark's cache manager substitutes the cached rows wherever those plans appear.
    items_classified = classified.items.persist()
    interactions_classified = classified.interactions.persist()

    counts: dict[str, int] = {}
    for entity, frame, raw_df in (("items", items_classified, raw.items),
                                  ("interactions", interactions_classified, raw.interactions)):
        counts[f"{entity}_read"] = raw_df.count()
        counts[f"{entity}_quarantined"] = 0
        for row in ingest.count_by_source(frame).collect():
            log.info("%s from %s: read %d, kept %d, quarantined %d",
                     entity, row[S.SOURCE], row["read"], row["kept"], row["quarantined"])
            for key in ("read", "kept", "quarantined"):  # per source file, for the audit trail
                counts[f"{entity}_{key}:{row[S.SOURCE]}"] = row[key]
            counts[f"{entity}_quarantined"] += row["quarantined"]
            if entity == "items":
                counts[ingest.TEXT_TRUNCATED] = counts.get(ingest.TEXT_TRUNCATED, 0) + row[ingest.TEXT_TRUNCATED]
    _check_quarantined_share(ctx, record, counts, items_classified, interactions_classified, raw.timestamp_unit)
    counts["items_kept"] = ctx.write(classified.items_kept, S.ITEMS)
    counts["interactions_kept"] = ctx.write(classified.interactions_kept, S.INTERACTIONS)
    counts["quarantined"] = ctx.write(classified.quarantined, S.QUARANTINE)
    counts["users"] = ctx.write(classified.users, S.USERS)
    items_classified.unpersist()
    interactions_classified.unpersist()
    record.row_counts.update(counts)
    if counts.get(ingest.TEXT_TRUNCATED):
        log.warning("%d item texts were longer than ingest.max_text_chars=%d and were cut",
                    counts[ingest.TEXT_TRUNCATED], cfg.ingest.max_text_chars)
    for entity in ("items", "interactions"):
        kept, bad, read = counts[f"{entity}_kept"], counts[f"{entity}_quarantined"], counts[f"{entity}_read"]
        if kept + bad != read:
            raise ReconciliationError(f"{entity}: read {read} != kept {kept} + quarantined {bad}")
    if counts["quarantined"] != counts["items_quarantined"] + counts["interactions_quarantined"]:
        raise ReconciliationError(
            f"quarantine table got {counts['quarantined']} rows, expected "
            f"{counts['items_quarantined']} + {counts['interactions_quarantined']}")


def _check_quarantined_share(ctx: RunContext, record: StepRecord, counts: dict[str, int], items_classified,
                             interactions_classified, timestamp_unit: str) -> None:
    """Refuse (raise, nothing written yet) an input whose quarantined share breaks the guardrails."""
    g = ctx.cfg.guardrails
    if not g.enabled:
        return
    refusals = []
    for entity, frame in (("items", items_classified), ("interactions", interactions_classified)):
        if not counts[f"{entity}_quarantined"]:
            continue
        reasons = [ReasonCount(r[S.REASON], r["rows"], r["example"], r["earliest_ts"])
                   for r in ingest.quarantine_by_reason(frame).collect()]
        for r in reasons:
            counts[f"{entity}_quarantined:{r.reason}"] = r.rows
        read = counts[f"{entity}_read"]
        breaches = quarantine_breaches(read, reasons, g.max_quarantined_share, g.max_quarantined_share_by_reason)
        if breaches:
            refusals.append(quarantine_message(entity, read, reasons, breaches, unit=timestamp_unit, ds=ctx.ds))
    if not refusals:
        return
    if not ctx.force:
        raise QuarantineThresholdError("ingest refused the night's input:\n" + "\n".join(refusals))
    counts["quarantine_forced"] = 1
    record.message = "FORCED past the quarantine limit: " + " | ".join(refusals)
    log.warning("%s", record.message)
