"""A six-item catalogue of two topics with known answers, shared by the scoring tests (numpy kernel
and its Spark adapter)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hybridrec import schema as S
from hybridrec.scoring.index import build_item_index
from hybridrec.scoring.kernel import History
from hybridrec.scoring.params import Blend, ScoringParams

POPULARITY = S.POPULARITY

# Items a* are topic A (embedding axis 0), b* topic B (axis 1). a2_new and b2_new have no ALS factors yet.
IDS = ["a0", "a1", "a2_new", "b0", "b1", "b2_new"]
EMB = np.array([[1, 0], [0.9, 0.1], [0.95, 0.05], [0, 1], [0.1, 0.9], [0.05, 0.95]], dtype=np.float32)
EMB /= np.linalg.norm(EMB, axis=1, keepdims=True)
FACTORS = [[1.0, 0.0], [0.8, 0.1], None, [0.0, 1.0], [0.1, 0.8], None]
INDEX = build_item_index(pd.DataFrame({
    S.ITEM_ID: IDS, S.FEATURES: FACTORS, S.EMBEDDING: list(EMB), POPULARITY: [5.0, 4.0, 0.0, 3.0, 2.0, 0.0],
}), mapping_ridge=0.01)

ALS_ONLY = Blend(als=1, recent=0, popularity=0, content=0, new_item_slots=0)
CONTENT_ONLY = Blend(als=0, recent=0, popularity=0, content=1, new_item_slots=0)
RECENT_ONLY = Blend(als=0, recent=1, popularity=0, content=0, new_item_slots=0)
HYBRID = Blend(als=0.4, recent=0.3, popularity=0.1, content=0.2, new_item_slots=1)


def params(*blends: tuple[str, Blend], **kw) -> ScoringParams:
    base = dict(top_n=3, blends=blends or (("hybrid", HYBRID),), positive_min_weight=1.0, recent_items=1,
                profile_max_items=10, recency_half_life_days=30.0, new_item_mapped_weight=0.5,
                block_bytes=1 << 20, as_of_epoch_s=1_000_000.0, retrieval="exact", ivf_list_size=64, ivf_probes=16,
                rerank_dims=96, rerank_candidates=300)
    return ScoringParams(**{**base, **kw})


def hist(pos, weight=None, ts=None) -> History:
    pos = np.asarray(pos, dtype=np.int64)
    return History(pos, np.asarray(weight if weight is not None else [5.0] * len(pos), float),
                   np.asarray(ts if ts is not None else [900_000.0] * len(pos), float))


A_FAN = np.array([1.0, 0.0])
