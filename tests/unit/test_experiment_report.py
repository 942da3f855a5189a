"""The experiment report's arithmetic on hand-made per-user values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hybridrec.quality.experiment import experiment_table


def _per_user(control: list[float], variant: list[float]) -> pd.DataFrame:
    users = [f"u{i}" for i in range(len(control))]
    return pd.DataFrame({"strategy": ["hybrid"] * len(users) + ["hybrid:b"] * len(users),
                         "user_id": users * 2, "ndcg_10": control + variant})


def test_a_constant_lift_has_that_difference_and_a_zero_width_interval():
    table = experiment_table(_per_user([0.1, 0.2, 0.3, 0.4], [0.2, 0.3, 0.4, 0.5]), "ndcg_10",
                             {"control": "hybrid", "b": "hybrid:b"})
    b = table.set_index("arm").loc["b"]
    assert b["users"] == 4 and np.isclose(b["diff_vs_control"], 0.1)
    assert np.isclose(b["ci_low"], 0.1) and np.isclose(b["ci_high"], 0.1)
    assert np.isclose(b["rel_diff_pct"], 40.0)  # 0.1 on a control mean of 0.25
    control = table.set_index("arm").loc["control"]
    assert control["diff_vs_control"] == 0 and control["ci_low"] == 0 == control["ci_high"]


def test_a_noisy_difference_gets_an_interval_around_its_mean_that_narrows_with_users():
    rng = np.random.default_rng(1)
    def width(n: int) -> tuple[float, bool]:
        control = rng.random(n).tolist()
        variant = (np.array(control) + rng.normal(0.05, 0.2, n)).tolist()
        row = experiment_table(_per_user(control, variant), "ndcg_10", {"control": "hybrid", "b": "hybrid:b"}).iloc[1]
        return row["ci_high"] - row["ci_low"], row["ci_low"] <= row["diff_vs_control"] <= row["ci_high"]
    small, inside_small = width(100)
    large, inside_large = width(10_000)
    assert inside_small and inside_large and large < small / 5  # about 1/sqrt(100) of it
