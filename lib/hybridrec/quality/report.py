"""Evaluation reports: the console table, the JSON payload and the bar chart of a metrics frame."""

from __future__ import annotations

import pandas as pd

from hybridrec import schema as S
from hybridrec.config import Config
from hybridrec.quality.metrics import SEGMENT_ALL, SEGMENT_COLD


def print_metrics(metrics: pd.DataFrame) -> None:
    table = metrics.assign(name=lambda m: m.apply(_metric_name, axis=1)).pivot_table(
        index="name", columns=S.STRATEGY, values="value", aggfunc="first", sort=False)
    print(table.to_string(float_format=lambda v: f"{v:.4f}"), flush=True)


def print_ranker(model, message: str) -> None:
    """Which hybrid ran, and the ranker's feature importances (share of split gain), largest first."""
    print(("hybrid = learned ranker: " if model is not None else "hybrid = linear blend: ") + message, flush=True)
    if model is not None:
        for name, share in sorted(model.importances.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<16} {share:.3f}", flush=True)


def _metric_name(row: pd.Series) -> str:
    base = f"{row['metric']}@{row['k']}" if row["metric"] != "users" else "users"
    if row["segment"] == SEGMENT_COLD:
        return f"cold_{base}" if row["metric"] != "users" else "cold_items/users"
    return base if row["segment"] == SEGMENT_ALL else f"{row['segment']}/{base}"


def metrics_json(metrics: pd.DataFrame, cfg: Config, dataset: str) -> dict:
    strategies: dict[str, dict[str, float]] = {}
    for _, row in metrics.iterrows():
        strategies.setdefault(row[S.STRATEGY], {})[_metric_name(row)] = round(float(row["value"]), 6)
    return {"dataset": dataset, "protocol": cfg.evaluate.model_dump(), "strategies": strategies}


def write_chart(metrics: pd.DataFrame, path: str, k: int, cold_k: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [f"ndcg@{k}", f"recall@{k}", f"cold_recall@{cold_k}", f"coverage@{k}"]
    table = metrics.assign(name=lambda m: m.apply(_metric_name, axis=1))
    table = table[table["name"].isin(shown)].pivot_table(index=S.STRATEGY, columns="name", values="value")
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.5))
    for ax, name in zip(axes, shown, strict=True):
        values = table[name] if name in table else pd.Series(dtype=float)
        ax.bar(values.index, values.to_numpy(), color="#4c72b0")
        ax.set_title(name)
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
