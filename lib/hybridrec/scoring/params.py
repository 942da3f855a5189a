"""Scoring parameters, built from the typed configuration only (defaults live in defaults.toml)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from hybridrec import schema as S
from hybridrec.config import RecommendConfig

if TYPE_CHECKING:
    from hybridrec.scoring.ranker import RankerModel


@dataclass(frozen=True)
class Blend:
    """Weights of the per-user z-scored signals, and how many list places go to new items."""
    als: float
    recent: float
    popularity: float
    content: float
    new_item_slots: int
    ranked: bool = False          # the learned ranker orders the list (the weights are then unused)

    @property
    def uses_interactions(self) -> bool:
        return self.ranked or self.als + self.recent + self.popularity > 0


@dataclass(frozen=True)
class ScoringParams:
    top_n: int
    blends: tuple[tuple[str, Blend], ...]   # (strategy name, blend); one list per user per blend
    positive_min_weight: float
    recent_items: int
    profile_max_items: int
    recency_half_life_days: float
    new_item_mapped_weight: float
    block_bytes: int
    as_of_epoch_s: float          # end of the run date: recency is measured from here
    retrieval: str                # exact | rerank | ivf (approximate: see scoring.retrieval)
    ivf_list_size: int
    ivf_probes: int
    rerank_dims: int
    rerank_candidates: int
    candidates_per_source: int = 100  # ranker: candidates each source proposes per user
    new_item_candidates: int = 20     # ranker: new-item candidates per user
    ranker: RankerModel | None = None  # the trained ranker, for blends with ranked=True
    mark_new_items: bool = True   # new-item rows say strategy "new_item" (evaluation keeps the blend name)
    explain: bool = True          # fill reason_item_id (evaluation does not need it)


def blend_from_config(cfg: RecommendConfig) -> Blend:
    return Blend(als=cfg.als_weight, recent=cfg.recent_weight, popularity=cfg.popularity_weight,
                 content=cfg.content_weight, new_item_slots=cfg.new_item_slots)


def scoring_params(cfg: RecommendConfig, positive_min_weight: float, ds: date,
                   blends: tuple[tuple[str, Blend], ...] | None = None) -> ScoringParams:
    return ScoringParams(
        top_n=cfg.top_n, blends=blends or ((S.HYBRID, blend_from_config(cfg)),),
        positive_min_weight=positive_min_weight, recent_items=cfg.recent_items,
        profile_max_items=cfg.profile_max_items, recency_half_life_days=cfg.recency_half_life_days,
        new_item_mapped_weight=cfg.new_item_mapped_weight, block_bytes=cfg.block_bytes,
        retrieval=cfg.retrieval, ivf_list_size=cfg.ivf_list_size, ivf_probes=cfg.ivf_probes,
        rerank_dims=cfg.rerank_dims, rerank_candidates=cfg.rerank_candidates,
        as_of_epoch_s=S.day_end(ds).timestamp(),
    )
