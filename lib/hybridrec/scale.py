"""`hybridrec bench --scale N`: the whole nightly on synthetic data with N interactions, timed per
step, with peak memory (resident memory of this process, its JVM and its Python workers together).

Users and items grow with N (20 interactions per user, 200 per item: 20M interactions is 1M users
and 100k items), so comparing two sizes shows which steps grow faster than the data.
"""

from __future__ import annotations

import itertools
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from hybridrec.bench import BENCH_DS, machine
from hybridrec.config import Config
from hybridrec.context import RunContext
from hybridrec.datasets.synthetic import generate_synthetic
from hybridrec.pipeline import STEPS, run_steps

INTERACTIONS_PER_USER = 20
INTERACTIONS_PER_ITEM = 200


def scale_config(cfg: Config, workdir: Path, n_interactions: int) -> Config:
    n_users = max(10, n_interactions // INTERACTIONS_PER_USER)
    synthetic = cfg.synthetic.model_copy(update={
        "n_users": n_users, "n_items": max(10, n_interactions // INTERACTIONS_PER_ITEM),
        "n_interactions": n_interactions, "n_users_without_history": n_users // 100,
        "end_date": (BENCH_DS - timedelta(days=1)).isoformat()})
    return cfg.model_copy(update={
        "lakehouse": cfg.lakehouse.model_copy(update={"root": str(workdir / f"scale-{n_interactions}")}),
        "dataset": cfg.dataset.model_copy(update={"kind": "synthetic"}),
        "synthetic": synthetic,
    })


class PeakMemory:
    """Samples the resident memory of this process tree (driver, JVM, Python workers) in a thread."""

    def __init__(self, interval_s: float = 0.25) -> None:
        import psutil

        self._root = psutil.Process()
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.peak_bytes = 0
        self.window_peak_bytes = 0

    def current_bytes(self) -> int:
        import psutil

        total = 0
        for process in [self._root, *self._root.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.Error:  # a worker that exited between listing and reading
                pass
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            now = self.current_bytes()
            self.peak_bytes = max(self.peak_bytes, now)
            self.window_peak_bytes = max(self.window_peak_bytes, now)
            self._stop.wait(self._interval_s)

    def new_window(self) -> None:
        self.window_peak_bytes = self.current_bytes()

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _gib(n_bytes: int) -> float:
    return round(n_bytes / 2**30, 2)


def run_scale(spark: SparkSession, cfg: Config, workdir: Path, n_interactions: int) -> dict[str, Any]:
    """Generates the data (untimed by the nightly), then runs every nightly step on it."""
    scale_cfg = scale_config(cfg, workdir, n_interactions)
    start = time.perf_counter()
    generate_synthetic(scale_cfg.synthetic, scale_cfg.lakehouse.root)
    generate_s = time.perf_counter() - start
    # force: a gate verdict on synthetic data must not stop the timing (it is recorded either way)
    ctx = RunContext(spark=spark, cfg=scale_cfg, ds=BENCH_DS, force=True)
    steps: dict[str, Any] = {}
    with PeakMemory() as memory:
        for step in STEPS:
            memory.new_window()
            start = time.perf_counter()
            run_steps(ctx, (step,))
            steps[step] = {"seconds": time.perf_counter() - start, "peak_rss_gib": _gib(memory.window_peak_bytes),
                           "row_counts": dict(ctx.records[-1].row_counts), "message": ctx.records[-1].message}
    s = scale_cfg.synthetic
    return {"interactions": n_interactions, "users": s.n_users + s.n_users_without_history, "items": s.n_items,
            "generate_s": generate_s, "steps": steps, "total_s": sum(v["seconds"] for v in steps.values()),
            "peak_rss_gib": _gib(memory.peak_bytes), "driver_memory": scale_cfg.spark.driver_memory}


def growth(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Time ratio per step between consecutive sizes, next to the data ratio (linear = equal)."""
    out = []
    for small, large in itertools.pairwise(runs):
        out.append({"from": small["interactions"], "to": large["interactions"],
                    "data_ratio": large["interactions"] / small["interactions"],
                    "step_time_ratio": {step: large["steps"][step]["seconds"] / small["steps"][step]["seconds"]
                                        for step in large["steps"] if small["steps"][step]["seconds"] > 0},
                    "total_time_ratio": large["total_s"] / small["total_s"]})
    return out


def scale_result(runs: list[dict[str, Any]], master: str) -> dict[str, Any]:
    return {"machine": machine(), "spark_master": master, "scale": runs, "growth": growth(runs)}


def format_scale(result: dict[str, Any]) -> str:
    runs = result["scale"]
    header = f"{'step':<14}" + "".join(f"{r['interactions']:>14,} s  GiB" for r in runs)
    lines = [header]
    for step in STEPS:
        lines.append(f"{step:<14}" + "".join(
            f"{r['steps'][step]['seconds']:>16.1f}{r['steps'][step]['peak_rss_gib']:>5.1f}" for r in runs))
    lines.append(f"{'total':<14}" + "".join(f"{r['total_s']:>16.1f}{r['peak_rss_gib']:>5.1f}" for r in runs))
    for g in result["growth"]:
        ratios = ", ".join(f"{step} {ratio:.1f}x" for step, ratio in g["step_time_ratio"].items())
        lines.append(f"{g['from']:,} -> {g['to']:,} ({g['data_ratio']:.0f}x data): {ratios}; "
                     f"total {g['total_time_ratio']:.1f}x")
    return "\n".join(lines)
