"""The fine-tuning's pure parts: batches without repeated items, and the verdict on a version."""

from __future__ import annotations

import numpy as np

from conftest import make_config
from hybridrec.embedding.finetune import batches_without_repeats
from hybridrec.steps.finetune import verdict


def test_every_pair_is_used_once_and_no_batch_repeats_an_item():
    rng = np.random.default_rng(0)
    a = [f"i{k}" for k in rng.integers(0, 30, 500)]
    b = [f"i{k}" for k in rng.integers(30, 60, 500)]
    plan = batches_without_repeats(a, b, 16, np.random.default_rng(1))
    used = [i for batch in plan for i in batch]
    assert sorted(used) == list(range(500))
    for batch in plan:
        items = [a[i] for i in batch] + [b[i] for i in batch]
        assert len(items) == len(set(items)) and len(batch) <= 16
    assert len(plan[0]) == 16  # early batches are full


def test_a_version_is_used_only_when_cold_recall_rises_and_ndcg_holds(tmp_path):
    cfg = make_config(tmp_path, "finetune.min_cold_gain_pct=10.0", "finetune.max_ndcg_drop_pct=1.0")
    frozen = {"content_cold_recall@50": 0.10, "hybrid_ndcg@10": 0.20}
    ok, reason = verdict(frozen, {"content_cold_recall@50": 0.12, "hybrid_ndcg@10": 0.199}, cfg)
    assert ok and reason.startswith("passed: ") and "+20.0%" in reason
    assert not verdict(frozen, {"content_cold_recall@50": 0.105, "hybrid_ndcg@10": 0.25}, cfg)[0]  # +5% < 10%
    assert not verdict(frozen, {"content_cold_recall@50": 0.20, "hybrid_ndcg@10": 0.19}, cfg)[0]   # NDCG -5%
    assert verdict(frozen, {"content_cold_recall@50": 0.20, "hybrid_ndcg@10": 0.19}, cfg)[1].startswith("not used: ")
