"""The experiment report: each arm's hybrid against control on the same holdout users, with a
bootstrap confidence interval over users (pure: pandas and numpy in, a table out).

Every arm is scored for every evaluated user (a paired comparison: the same users, so the spread
between users cancels out of the difference); the interval is the percentile bootstrap of the
mean per-user difference, resampling users with replacement.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hybridrec import schema as S

REPORT_COLUMNS = ("arm", "strategy", "users", "mean", "diff_vs_control", "ci_low", "ci_high", "rel_diff_pct")


def experiment_table(per_user: pd.DataFrame, metric: str, arms: dict[str, str], *, resamples: int = 1000,
                     seed: int = 7, level: float = 0.95) -> pd.DataFrame:
    """per_user: strategy, user_id, `metric`; arms: arm name -> strategy (control first). One row per arm:
    users, mean, the mean difference to control and its bootstrap interval at `level`."""
    wide = per_user.pivot_table(index=S.USER_ID, columns=S.STRATEGY, values=metric, aggfunc="first")
    control = wide[arms["control"]].to_numpy(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(wide), size=(resamples, len(wide)))
    tail = (1 - level) / 2 * 100
    rows = []
    for arm, strategy in arms.items():
        values = wide[strategy].to_numpy(np.float64)
        diff = values - control
        boot = diff[draws].mean(axis=1)
        base = control.mean()
        rows.append({"arm": arm, "strategy": strategy, "users": len(values), "mean": values.mean(),
                     "diff_vs_control": diff.mean(), "ci_low": np.percentile(boot, tail),
                     "ci_high": np.percentile(boot, 100 - tail),
                     "rel_diff_pct": 100 * diff.mean() / base if base > 0 else np.nan})
    return pd.DataFrame(rows, columns=list(REPORT_COLUMNS))


def write_chart(table: pd.DataFrame, path: str, metric: str) -> None:
    """Each arm's difference to control with its interval."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 0.6 * len(table) + 1.5))
    y = np.arange(len(table))
    ax.errorbar(table["diff_vs_control"], y, xerr=[table["diff_vs_control"] - table["ci_low"],
                                                   table["ci_high"] - table["diff_vs_control"]], fmt="o", capsize=4)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(y, table["arm"])
    ax.set_xlabel(f"{metric}: arm - control (95% bootstrap interval)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
