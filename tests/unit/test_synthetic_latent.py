"""The synthetic generator's latent model, rebuilt from the seed, is the one its files were drawn from:
benchmarks use it as a ceiling (the best ranking knowing each user's true tastes)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from hybridrec.config import load_config
from hybridrec.sources.synthetic import CATEGORIES, LatentModel, generate_synthetic, latent_model


def test_next_item_probability_is_taste_times_popularity_share_within_the_category():
    model = LatentModel(category=np.array([0, 0, 1, 1]), popularity=np.array([1.0, 3.0, 2.0, 9.0]),
                        warm=np.array([True, True, True, False]), taste=np.array([[0.5, 0.5], [1.0, 0.0]]))
    prob = model.next_item_probability(np.array([1, 0]))
    np.testing.assert_allclose(prob, [[0.25, 0.75, 0.0, 0.0], [0.125, 0.375, 0.5, 0.0]])


def test_the_rebuilt_latent_model_is_the_one_the_files_were_drawn_from(tmp_path):
    cfg = load_config(None, ["synthetic.n_users=120", "synthetic.n_items=300", "synthetic.n_interactions=9000",
                             "synthetic.n_users_without_history=0"]).synthetic
    folder = generate_synthetic(cfg, str(tmp_path))
    events = pq.read_table(folder / "interactions.parquet", columns=["user_id", "item_id"]).to_pandas()
    model = latent_model(cfg)
    item = events["item_id"].str[1:].astype(int).to_numpy()
    user = events["user_id"].str[1:].astype(int).to_numpy()
    assert model.warm[item].all(), "an item the model calls cold was drawn"
    assert (~model.warm).sum() > 0 and len(np.unique(item)) <= model.warm.sum()
    # Each active user's most drawn category is the one their taste puts first (sampling noise aside).
    counts = np.zeros((cfg.n_users, len(CATEGORIES)))
    np.add.at(counts, (user, model.category[item]), 1)
    active = counts.sum(axis=1) >= 40
    agree = (counts[active].argmax(axis=1) == model.taste[active].argmax(axis=1)).mean()
    assert active.sum() >= 30 and agree >= 0.8, (active.sum(), agree)
    # A probability law over the catalogue for every user.
    np.testing.assert_allclose(model.next_item_probability(np.arange(cfg.n_users)).sum(axis=1), 1.0, rtol=1e-9)
