"""Scoring parameters, built from the typed configuration only (defaults live in defaults.toml)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from hybridrec import schema as S
from hybridrec.config import RecommendConfig

if TYPE_CHECKING:
    from hybridrec.scoring.ranker import RankerModel
    from hybridrec.scoring.rules import ItemRules


@dataclass(frozen=True)
class Blend:
    """Weights of the per-user z-scored signals, and how many list places go to new items."""
    als: float
    recent: float
    popularity: float
    content: float
    new_item_slots: int
    ranked: bool = False          # the learned ranker orders the list (the weights are then unused)
    diversity: float = 0.0        # MMR lambda: 0 = score order; up to 1 = each next item least like those above

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
    diversity_candidates: int = 150   # MMR: each list is re-ranked from this many best-scored items
    rules: ItemRules | None = None    # business rules applied to the published lists (None: none)
    mark_new_items: bool = True   # new-item rows say strategy "new_item" (evaluation keeps the blend name)
    explain: bool = True          # fill reason_item_id (evaluation does not need it)
    text_prior_items: float = 0.0  # a user's own words weigh as this many history items in the content profile
    text_neighbours: int = 0       # newcomers with words: ALS factors from this many items nearest the words
    text_user_neighbours: int = 0  # ... or from this many users with factors whose words are nearest

    def pool(self, blend: Blend) -> int:
        """How many best-scored items a blend's list is chosen from: top_n, more when rules may
        remove some or MMR re-ranks (with approximate retrieval, at most the exactly scored candidates)."""
        base = self.top_n + (self.rules.extra_candidates if self.rules is not None else 0)
        if blend.diversity > 0:
            base = max(base, self.diversity_candidates)
        if self.retrieval in ("rerank", "ivf"):
            base = min(base, self.rerank_candidates)
        return max(self.top_n, base)


def blend_from_config(cfg: RecommendConfig) -> Blend:
    return Blend(als=cfg.als_weight, recent=cfg.recent_weight, popularity=cfg.popularity_weight,
                 content=cfg.content_weight, new_item_slots=cfg.new_item_slots, diversity=cfg.diversity_lambda)


def scoring_params(cfg: RecommendConfig, positive_min_weight: float, ds: date,
                   blends: tuple[tuple[str, Blend], ...] | None = None) -> ScoringParams:
    return ScoringParams(
        top_n=cfg.top_n, blends=blends or ((S.HYBRID, blend_from_config(cfg)),),
        positive_min_weight=positive_min_weight, recent_items=cfg.recent_items,
        profile_max_items=cfg.profile_max_items, recency_half_life_days=cfg.recency_half_life_days,
        new_item_mapped_weight=cfg.new_item_mapped_weight, block_bytes=cfg.block_bytes,
        retrieval=cfg.retrieval, ivf_list_size=cfg.ivf_list_size, ivf_probes=cfg.ivf_probes,
        rerank_dims=cfg.rerank_dims, rerank_candidates=cfg.rerank_candidates,
        diversity_candidates=cfg.diversity_candidates, text_prior_items=cfg.text_prior_items,
        text_neighbours=cfg.text_neighbours, text_user_neighbours=cfg.text_user_neighbours,
        as_of_epoch_s=S.day_end(ds).timestamp(),
    )
