"""The finetune step (weekly, `hybridrec finetune`): a new encoder version from the interactions.

Data: the configured protocol's holdout is split off first, then a validation split is carved from its
training part (as `tune` does). Pairs come from the validation split's training part only, so neither
the validation events nor the evaluation's test events are ever seen in training. The version is then
judged on the validation split against the encoder the nightly would otherwise use (the frozen base):
the content strategy's cold-item recall must rise by more than finetune.min_cold_gain_pct and the
hybrid's NDCG may not fall by more than finetune.max_ndcg_drop_pct. The hybrid is what a night would
publish with that encoder: a ranker trained with it (on a validation split of the validation split's
training part, as the gate trains one) when ranker.enabled, else the linear blend. Every version is
kept (files and an `encoder_versions` row); only one that passed is used by later nights.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from pathlib import Path

import pandas as pd

from hybridrec import schema as S
from hybridrec.config import HASHING_MODEL, Config, positive_min_weight
from hybridrec.embedding.encoder import resolve_model_path
from hybridrec.embedding.finetune import train_lora
from hybridrec.errors import ConfigError
from hybridrec.io.encoders import local_folder, next_sequence, store_version, tuned_model_name, version_folder
from hybridrec.quality import metrics as qm
from hybridrec.quality.gate import CONTENT, HYBRID, baseline_blends, metric_value
from hybridrec.steps.context import RunContext
from hybridrec.steps.embed_items import embed_catalogue
from hybridrec.steps.evaluation import Holdout, make_holdout, score_holdout, validation_holdout
from hybridrec.steps.ranking import train_ranker
from hybridrec.steps.runs import StepRecord
from hybridrec.transforms import pairs as P
from hybridrec.transforms.als import fit_factors

log = logging.getLogger(__name__)


def training_pairs(ctx: RunContext, train) -> pd.DataFrame:
    f = ctx.cfg.finetune
    found = P.with_cooccurrence_pairs(train, positive_min_weight=positive_min_weight(ctx.cfg), window_days=f.window_days,
                                      neighbours=f.neighbours, min_users=f.min_users)
    return P.top_pairs(P.with_pair_texts(found, ctx.read(S.ITEMS)), f.max_pairs, f.max_pairs_per_item).toPandas()


def validation_metrics(ctx: RunContext, cfg: Config, valid: Holdout, factors) -> dict[str, float]:
    """NDCG@k and cold-item recall@cold_k on `valid` of content, the linear blend and the hybrid a night
    would publish with `cfg`'s encoder (`factors`: ALS fitted on valid.train, shared by the encoders
    compared); `hybrid_ranked` 1 when that hybrid is a ranker trained with this encoder's features."""
    e = cfg.evaluate
    k = e.ks[0]
    blends = baseline_blends(cfg)
    scoped = dataclasses.replace(ctx, cfg=cfg)
    ranker = train_ranker(scoped, valid).model  # None (ranker disabled, too little data): the blend publishes
    strategies = {CONTENT: blends[CONTENT], HYBRID: dataclasses.replace(blends[HYBRID], ranked=ranker is not None)}
    if ranker is not None:
        strategies[S.BLEND_STRATEGY] = blends[HYBRID]
    recs = score_holdout(scoped, valid, cfg.als, strategies, max(k, e.cold_k), ranker=ranker, factors=factors)
    table = qm.ranking_metrics(recs, valid.relevant, valid.users, [k], e.cold_k).toPandas()
    recs.unpersist()
    scored_as = {CONTENT: CONTENT, HYBRID: HYBRID, S.BLEND_STRATEGY: S.BLEND_STRATEGY if ranker else HYBRID}
    return {"hybrid_ranked": float(ranker is not None),
            **{f"{name}_{metric}": metric_value(table, strategy, m, kk, segment) for name, strategy in scored_as.items()
               for metric, m, kk, segment in ((f"ndcg@{k}", "ndcg", k, qm.SEGMENT_ALL),
                                              (f"cold_recall@{e.cold_k}", "recall", e.cold_k, qm.SEGMENT_COLD))}}


def verdict(frozen: dict[str, float], tuned: dict[str, float], cfg: Config) -> tuple[bool, str]:
    """Pure: did the tuned encoder beat the frozen one (see the module's docstring), and why."""
    f, k, ck = cfg.finetune, cfg.evaluate.ks[0], cfg.evaluate.cold_k
    cold, ndcg = f"content_cold_recall@{ck}", f"{HYBRID}_ndcg@{k}"
    # -100 accepts a version whatever its cold-item recall (a roll-out decided elsewhere; the tests)
    cold_ok = f.min_cold_gain_pct <= -100 or tuned[cold] > frozen[cold] * (1 + f.min_cold_gain_pct / 100)
    ndcg_ok = tuned[ndcg] >= frozen[ndcg] * (1 - f.max_ndcg_drop_pct / 100)
    gain = 100 * (tuned[cold] - frozen[cold]) / max(frozen[cold], 1e-12)
    reason = (f"{cold} {frozen[cold]:.4f} -> {tuned[cold]:.4f} ({gain:+.1f}%, needed > +{f.min_cold_gain_pct:g}%); "
              f"{ndcg} {frozen[ndcg]:.4f} -> {tuned[ndcg]:.4f} (allowed drop {f.max_ndcg_drop_pct:g}%)")
    return cold_ok and ndcg_ok, ("passed: " if cold_ok and ndcg_ok else "not used: ") + reason


def finetune_step(ctx: RunContext, record: StepRecord) -> None:
    cfg = ctx.cfg
    if cfg.embedding.model == HASHING_MODEL:
        raise ConfigError(f"finetune adapts a BERT encoder; embedding.model is {HASHING_MODEL!r} (word hashing)")
    base_path = resolve_model_path(cfg.embedding.model_path)
    outer = make_holdout(ctx.read(S.INTERACTIONS), cfg)
    valid = validation_holdout(outer, cfg)
    outer.release()
    pairs = training_pairs(ctx, valid.train)
    log.info("finetune: %d pairs from %s", len(pairs), f"{cfg.evaluate.protocol} validation training part")
    version = f"ft-{ctx.run_id}"
    target = version_folder(ctx.root, version)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / version
        report = train_lora(base_path, pairs[P.TEXT_A].tolist(), pairs[P.TEXT_B].tolist(),
                            (pairs[P.ITEM_A].tolist(), pairs[P.ITEM_B].tolist()), cfg.finetune, local)
        store_version(ctx.spark, local, target)
    tuned_cfg = cfg.model_copy(update={"embedding": cfg.embedding.model_copy(update={
        "model": tuned_model_name(cfg.embedding.model, version), "model_path": local_folder(ctx.spark, target),
        "onnx_path": ""})})
    embedded = {name: embed_catalogue(ctx, c.embedding) for name, c in (("frozen", cfg), ("tuned", tuned_cfg))}
    factors = fit_factors(valid.train, cfg.als, ctx.ds)
    frozen, tuned = validation_metrics(ctx, cfg, valid, factors), validation_metrics(ctx, tuned_cfg, valid, factors)
    for df in factors:
        df.unpersist()
    valid.release()
    passed, reason = verdict(frozen, tuned, cfg)
    log.info("finetune %s: %s", version, reason)
    metrics = {"pairs": float(report.pairs), "steps": float(report.steps), "train_seconds": report.seconds,
               "first_loss": report.first_loss, "last_loss": report.last_loss, "model_bytes": float(report.model_bytes),
               "adapter_bytes": float(report.adapter_bytes), "trainable_params": float(report.trainable_params),
               "validation_users": float(valid.n_users),
               **{f"frozen_{k}": v for k, v in frozen.items()}, **{f"tuned_{k}": v for k, v in tuned.items()}}
    ctx.append([{S.DS: ctx.ds, S.RUN_ID: ctx.run_id, S.MODEL: tuned_cfg.embedding.model, "base_model": cfg.embedding.model,
                 "sequence": next_sequence(ctx.spark, ctx.root),
                 "path": target, "passed": passed, "reason": f"{reason}; trained on {report.device}",
                 "params": json.dumps(cfg.finetune.model_dump(), sort_keys=True), "metrics": metrics}],
               S.ENCODER_VERSIONS)
    record.row_counts.update({"pairs": report.pairs, "embedded_frozen": embedded["frozen"],
                              "embedded_tuned": embedded["tuned"]})
    record.message = f"{tuned_cfg.embedding.model}: {reason}"
