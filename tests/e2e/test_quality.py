"""Evaluation, tuning and the quality gate, end to end on the topic dataset (several nights of steps:
the e2e lane)."""

from __future__ import annotations

import json
from datetime import date

import pytest
from pyspark.sql import functions as F

from conftest import make_config
from hybridrec import cli
from hybridrec import schema as S
from hybridrec.analytics import published_days
from hybridrec.config import load_config
from hybridrec.io.delta import append_rows, read_table
from hybridrec.steps import STEPS, RunContext, evaluation, run_steps
from topic_data import files_settings, write_topic_dataset

NIGHT_1, NIGHT_2 = date(2026, 11, 21), date(2026, 11, 22)
# Hybrid == ALS-only, so the "hybrid below ALS" rule can never fire here, and the EASE rule is off (on
# this three-topic catalogue EASE is perfect): each test controls the outcome. (tests/spark/test_metrics
# covers both rules, tests/e2e/test_ranker_nightly the ranker as the hybrid.)
ALS_ONLY_HYBRID = ["recommend.als_weight=1.0", "recommend.recent_weight=0.0", "recommend.popularity_weight=0.0",
                   "recommend.content_weight=0.0", "recommend.new_item_slots=0", "evaluate.cold_k=5",
                   "gate.ease_margin_pct=100"]


@pytest.fixture(scope="module")
def lakehouse(spark, tmp_path_factory):
    """Night 1 published (gate off); returns (settings, night-1 run context)."""
    base = tmp_path_factory.mktemp("quality")
    settings = [f'lakehouse.root="{base / "lakehouse"}"', *files_settings(write_topic_dataset(base / "input")),
                *ALS_ONLY_HYBRID]
    ctx = RunContext(spark=spark, cfg=make_config(base / "lakehouse", *settings), ds=NIGHT_1)
    run_steps(ctx, STEPS)
    return settings, ctx


def _runs(spark, root, run_id):
    """The end row of each step of one run (its `running` claim row left out)."""
    return {r["step"]: r for r in read_table(spark, root, S.RUNS)
            .where((F.col(S.RUN_ID) == run_id) & (F.col("status") != "running")).collect()}


def _published_days(root) -> set[date]:
    return set(published_days(root))


def test_evaluate_writes_metrics_json_and_chart_for_every_strategy(spark, lakehouse, tmp_path):
    settings, _ = lakehouse
    ctx = RunContext(spark=spark, cfg=make_config("unused", *settings), ds=NIGHT_1)
    out = tmp_path / "eval.json"
    cli._evaluate(ctx, str(out), tune=False)
    payload = json.loads(out.read_text())
    assert set(payload["strategies"]) == {"popularity", "als", "content", "hybrid", "ease"}  # ease: a reference
    for metrics in payload["strategies"].values():
        assert {"ndcg@10", "recall@10", "cold_recall@5", "coverage@10", "light_users/ndcg@10"} <= set(metrics)
    assert payload["strategies"]["hybrid"]["ndcg@10"] == payload["strategies"]["als"]["ndcg@10"]  # same blend
    assert payload["protocol"]["protocol"] == "per_user"
    assert (tmp_path / "eval.png").stat().st_size > 1000
    rows = read_table(spark, ctx.root, S.METRICS, ds=NIGHT_1.isoformat())
    assert rows.where(F.col(S.RUN_ID) == ctx.run_id).select(S.STRATEGY).distinct().count() == 5


def test_tune_writes_a_config_the_nightly_run_accepts(spark, lakehouse, tmp_path):
    settings, _ = lakehouse
    grid = ["tune.ranks=[2, 4]", "tune.reg_params=[0.1]", "tune.alphas=[1.0]", "tune.max_iters=[2]",
            "tune.weight_step=0.5", "tune.max_weight=1.0"]
    ctx = RunContext(spark=spark, cfg=make_config("unused", *settings, *grid), ds=NIGHT_1)
    out = tmp_path / "tuned.toml"
    cli._tune(ctx, str(out))
    tuned = load_config(out)
    assert tuned.als.rank in (2, 4) and tuned.als.max_iter == 2
    assert tuned.recommend.content_weight > 0
    trials = (tmp_path / "tuned.trials.csv").read_text().splitlines()
    assert len(trials) == 1 + 2 * 5  # header + 2 ALS settings x (4 blends + ALS only)


def test_gate_refuses_a_night_worse_than_the_last_published_one_and_force_publishes(spark, lakehouse, caplog):
    settings, night1 = lakehouse
    root = night1.cfg.lakehouse.root
    # The last published night measured a (perfect) NDCG the new night cannot match.
    append_rows(spark, [{S.DS: NIGHT_1, S.RUN_ID: night1.run_id, S.STRATEGY: "hybrid", "segment": "all",
                         "metric": "ndcg", "k": 10, "value": 1.0}], root, S.METRICS, run_id="test")
    # The night, run through the command line's entry point (in this process, on the shared session):
    # exit code 1, the reason logged, nothing published.
    cfg = make_config("unused", *settings, "gate.enabled=true", "gate.max_drop_pct=10")
    cli_args = ["run", "--ds", NIGHT_2.isoformat()]
    for setting in [*settings, "gate.enabled=true", "gate.max_drop_pct=10"]:
        cli_args += ["--set", setting]
    caplog.clear()
    assert cli.main(cli_args) == 1
    logged = caplog.text
    assert "quality gate failed, night not published" in logged and "below the last published night's 1.0000" in logged
    assert _published_days(root) == {NIGHT_1}  # the previous night stays the latest
    [refused] = {r[S.RUN_ID] for r in read_table(spark, root, S.RUNS).where(F.col(S.DS) == NIGHT_2).collect()}
    runs = _runs(spark, root, refused)
    assert runs["gate"]["status"] == "failed" and "recommend" not in runs

    # Forcing re-runs the gate and publishes; the refused run's ingest, embeddings and factors stand
    # (steps hand over through the tables, as they do between Airflow tasks).
    forced = RunContext(spark=spark, cfg=cfg, ds=NIGHT_2, force=True)
    run_steps(forced, ("gate", "recommend", "summary"))
    assert _published_days(root) == {NIGHT_1, NIGHT_2}
    gate = _runs(spark, root, forced.run_id)["gate"]
    assert gate["row_counts"]["gate_forced"] == 1 and gate["message"].startswith("FORCED")


def test_gate_passes_and_records_why_on_a_sample_of_users(spark, lakehouse):
    settings, _ = lakehouse
    full = evaluation.make_holdout(lakehouse[1].read(S.INTERACTIONS), lakehouse[1].cfg)
    assert full.n_users > 3
    full.release()
    cfg = make_config("unused", *settings, "gate.enabled=true", "gate.max_users=3")
    ctx = RunContext(spark=spark, cfg=cfg, ds=date(2026, 11, 20))  # no earlier published night to compare with
    run_steps(ctx, ("ingest", "gate"))  # the gate fits its own ALS on the holdout's training part
    gate = _runs(spark, ctx.cfg.lakehouse.root, ctx.run_id)["gate"]
    assert gate["status"] == "succeeded" and gate["message"].startswith("gate passed")
    # The gate scored only its sample (what keeps it linear in users at scale).
    users = (read_table(spark, ctx.root, S.METRICS).where((F.col(S.RUN_ID) == ctx.run_id) & (F.col("metric") == "users")
             & (F.col("segment") == "all")).select(S.STRATEGY, "value").collect())
    assert {r[S.STRATEGY]: r["value"] for r in users} == dict.fromkeys(["popularity", "als", "content", "hybrid", "ease"],
                                                                       3.0)


def test_global_time_protocol_holds_out_the_latest_events(spark, lakehouse):
    settings, _ = lakehouse
    ctx = RunContext(spark=spark, cfg=make_config("unused", *settings, 'evaluate.protocol="global_time"'), ds=NIGHT_1)
    holdout = evaluation.make_holdout(ctx.read(S.INTERACTIONS), ctx.cfg)
    # The fixture's events fall on Nov 10, 11 and 12: the last 20% of time is the Nov 12 events.
    assert holdout.train.agg(F.max(S.EVENT_TS)).first()[0].day == 11
    assert holdout.n_users > 0
    holdout.release()
