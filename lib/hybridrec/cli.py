"""Command line: `hybridrec run --ds D` runs every nightly step; `hybridrec <step> --ds D` runs one;
`hybridrec evaluate` and `hybridrec tune` are the offline quality commands."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date
from pathlib import Path

from hybridrec.config import load_config, log_config
from hybridrec.errors import HybridrecError

log = logging.getLogger("hybridrec")


def _ds(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--ds expects a date YYYY-MM-DD, got {value!r}") from exc


def _flag(value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no", ""):
        return False
    raise argparse.ArgumentTypeError(f"--force expects true or false, got {value!r}")


def build_parser() -> argparse.ArgumentParser:
    from hybridrec.steps import FORCEABLE_STEPS, STEPS

    settings = argparse.ArgumentParser(add_help=False)
    settings.add_argument("--config", help="TOML file overriding the shipped defaults")
    settings.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                          help="override one setting, e.g. --set recommend.top_n=20 (repeatable)")
    common = argparse.ArgumentParser(add_help=False, parents=[settings])
    common.add_argument("--ds", type=_ds, required=True, help="run date YYYY-MM-DD (the night being computed)")
    common.add_argument("--run-id", default="", help="run id to record (default: generated)")
    common.add_argument("--migrate-schema", action="store_true",
                        help="add new nullable contract columns to existing tables instead of refusing "
                             "(same as --set lakehouse.allow_schema_migration=true)")
    force = argparse.ArgumentParser(add_help=False)
    force.add_argument("--force", type=_flag, nargs="?", const=True, default=False, metavar="true|false",
                       help="publish even if the quality gate or a guardrail fails (recorded in the runs table); "
                            "--force=false is accepted so schedulers can template it")
    parser = argparse.ArgumentParser(prog="hybridrec", description="Nightly hybrid recommender on Spark.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", parents=[common, force], help="run every step: " + " -> ".join(STEPS))
    for step in STEPS:
        sub.add_parser(step, parents=[common, *([force] if step in FORCEABLE_STEPS else [])], help=f"run the {step} step only")
    evaluate = sub.add_parser("evaluate", parents=[common],
                              help="compare popularity, ALS, content and hybrid on a holdout; writes `metrics`")
    evaluate.add_argument("--json", help="also write the results as JSON here (and a PNG chart next to it)")
    evaluate.add_argument("--tune", action="store_true",
                          help="first tune ALS and the blend on a validation split (training data only)")
    experiment = sub.add_parser("experiment", parents=[common],
                                help="compare the [experiment] arms on a holdout, with bootstrap intervals")
    experiment.add_argument("--json", help="also write the table as JSON here (and a PNG chart next to it)")
    sub.add_parser("finetune", parents=[common],
                   help="weekly: LoRA-tune the text encoder on items liked together; a new version in encoder_versions")
    tune = sub.add_parser("tune", parents=[common], help="grid-search ALS and the blend on a validation split")
    tune.add_argument("--out", required=True, help="TOML file to write the chosen settings to (for --config)")
    sql = sub.add_parser("sql", parents=[settings],
                         help="run Spark SQL over the catalog's tables (database lakehouse.catalog_database) and print it")
    sql.add_argument("query", help='e.g. "SELECT strategy, count(*) FROM recommendations_latest GROUP BY 1"')
    sql.add_argument("--limit", type=int, default=50, help="rows to print (default 50)")
    show = sub.add_parser("show", parents=[settings], help="print one user's list with titles and reasons")
    show.add_argument("--user", required=True, help="user id")
    show.add_argument("--ds", type=_ds, help="run date (default: the newest published night)")
    vacuum = sub.add_parser("vacuum", parents=[settings],
                            help="Delta VACUUM: list (default) or delete files no version within the retention uses")
    vacuum.add_argument("--retention-hours", type=int, help="default: lakehouse.vacuum_retention_hours")
    vacuum.add_argument("--execute", action="store_true", help="delete them (default: dry run, only list)")
    optimize = sub.add_parser("optimize", parents=[settings], help="Delta OPTIMIZE: compact small files")
    optimize.add_argument("--table", action="append", default=[], help="only this table (repeatable; default: all)")
    optimize.add_argument("--ds", type=_ds, help="only this run date's partition")
    optimize.add_argument("--zorder", action="store_true", help="Z-order tables that have user_id on it")
    sub.add_parser("jars", parents=[settings],
                   help="print the Spark JVM packages as a comma-separated list, for spark-submit --jars")
    return parser


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("py4j").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    overrides = [*args.overrides, *(["lakehouse.allow_schema_migration=true"]
                                     if getattr(args, "migrate_schema", False) else [])]
    try:
        cfg = load_config(args.config, overrides)
    except HybridrecError as exc:
        log.error("%s", exc)
        return 2
    if args.command == "show":
        return _show(cfg, args.user, args.ds)
    if args.command == "jars":
        from hybridrec.session import jar_paths
        try:
            print(",".join(jar_paths(cfg)))
        except HybridrecError as exc:
            log.error("%s", exc)
            return 1
        return 0
    log_config(cfg)

    from pyspark import SparkContext

    from hybridrec.session import build_spark_session

    owned = SparkContext._active_spark_context is None  # stop only a session this command started
    try:
        spark = build_spark_session(cfg)
    except HybridrecError as exc:
        log.error("%s", exc)
        return 2
    spark.sparkContext.setLogLevel("WARN")
    try:
        return _with_spark(spark, cfg, args)
    finally:
        if owned:
            spark.stop()


def _with_spark(spark, cfg, args) -> int:
    if args.command == "sql":
        return _sql(spark, cfg, args.query, args.limit)
    if args.command == "vacuum":
        retention = cfg.lakehouse.vacuum_retention_hours if args.retention_hours is None else args.retention_hours
        return _vacuum(spark, cfg, retention, dry_run=not args.execute)
    if args.command == "optimize":
        return _optimize(spark, cfg, args.table, args.ds, args.zorder)
    from hybridrec.io.encoders import with_night_encoder
    from hybridrec.steps import RunContext

    if args.command != "finetune":  # finetune compares a new version with the base model itself
        cfg = with_night_encoder(spark, cfg, args.ds)
    ctx = RunContext(spark=spark, cfg=cfg, ds=args.ds, run_id=args.run_id, force=getattr(args, "force", False))
    try:
        if args.command == "evaluate":
            _evaluate(ctx, args.json, args.tune)
        elif args.command == "tune":
            _tune(ctx, args.out)
        elif args.command == "experiment":
            _experiment(ctx, args.json)
        elif args.command == "finetune":
            from hybridrec.steps import run_step
            from hybridrec.steps.finetune import finetune_step
            print(run_step(ctx, "finetune", finetune_step).message)
        else:
            from hybridrec.steps import STEPS, run_steps
            steps = STEPS if args.command == "run" else (args.command,)
            log.info("run %s: ds %s, steps %s", ctx.run_id, ctx.ds_str, ", ".join(steps))
            run_steps(ctx, steps)
    except HybridrecError as exc:
        log.error("run %s failed: %s", ctx.run_id, exc)
        return 1
    return 0


def _show(cfg, user_id: str, ds: date | None) -> int:
    from hybridrec import analytics

    lake = analytics.Lakehouse.from_config(cfg)
    try:
        ds = ds or analytics.latest_published_ds(lake)
        print(analytics.format_user_list(user_id, ds, analytics.user_list(lake, user_id, ds)))
    except HybridrecError as exc:
        log.error("%s", exc)
        return 1
    return 0


def _vacuum(spark, cfg, retention_hours: int, *, dry_run: bool) -> int:
    from hybridrec.io.maintenance import vacuum_lakehouse

    try:
        reports = vacuum_lakehouse(spark, cfg.lakehouse.root, retention_hours=retention_hours, dry_run=dry_run,
                                   min_retention_hours=cfg.lakehouse.vacuum_min_retention_hours)
    except HybridrecError as exc:
        log.error("vacuum refused: %s", exc)
        return 1
    for report in reports:
        verb = "deleted" if report.deleted else ("kept" if report.refused else "would delete")
        for path in report.files:
            print(f"{report.table}: {verb} {path}")
        for path in report.refused:
            print(f"{report.table}: table skipped: {path} resolves outside the table folder")
    total = sum(len(r.files) for r in reports if not r.refused)
    verb = "would delete" if dry_run else "deleted"
    print(f"{verb} {total} file(s) unreferenced for more than {retention_hours} h"
          + (" (dry run: pass --execute to delete)" if dry_run else ""))
    return 1 if any(r.refused for r in reports) else 0


def _optimize(spark, cfg, tables: list[str], ds: date | None, zorder: bool) -> int:
    from hybridrec.io.maintenance import optimize_lakehouse

    try:
        reports = optimize_lakehouse(spark, cfg.lakehouse.root, tables=tables or None,
                                     ds=ds.isoformat() if ds else None, zorder=zorder)
    except ValueError as exc:
        log.error("optimize refused: %s", exc)
        return 1
    for r in reports:
        order = f", Z-ordered by {r.zorder_by}" if r.zorder_by else ""
        print(f"{r.table}: {r.files_removed} file(s) compacted into {r.files_added}{order}")
    return 0


def _sql(spark, cfg, query: str, limit: int) -> int:
    from pyspark.errors import PySparkException

    from hybridrec.io.catalog import register_lakehouse

    try:
        database = cfg.lakehouse.catalog_database or "default"
        log.info("catalog: %s", ", ".join(register_lakehouse(spark, cfg.lakehouse.root, database)))
        spark.catalog.setCurrentDatabase(database)
        spark.sql(query).show(limit, truncate=False)
    except (PySparkException, HybridrecError) as exc:
        log.error("query failed: %s", exc)
        return 1
    return 0


def _evaluate(ctx, json_path: str | None, tune: bool) -> None:
    from hybridrec.config import dataset_kind
    from hybridrec.quality import report
    from hybridrec.quality.gate import ALS, CONTENT, HYBRID, POPULARITY, baseline_blends
    from hybridrec.steps import run_step
    from hybridrec.steps.evaluation import run_evaluation, run_tuning, write_metrics

    outcome = {}

    def evaluate(ctx, record) -> None:
        als_by_strategy, blends = None, None
        if tune:
            result = run_tuning(ctx)
            log.info("tuned: ALS-only %s; hybrid %s with %s", result.als_for_als, result.als_for_hybrid, result.blend)
            als_by_strategy = {ALS: result.als_for_als, HYBRID: result.als_for_hybrid,
                               CONTENT: result.als_for_hybrid, POPULARITY: result.als_for_hybrid}
            blends = {**baseline_blends(ctx.cfg), HYBRID: result.blend}
        evaluation = run_evaluation(ctx, als_by_strategy, blends, references=True)
        write_metrics(ctx, evaluation.metrics)
        record.row_counts["metrics"] = len(evaluation.metrics)
        record.message = "hybrid: " + ("ranker " if evaluation.ranker.model else "linear blend ") + evaluation.ranker.message
        outcome.update(metrics=evaluation.metrics, result=result if tune else None, ranker=evaluation.ranker)

    run_step(ctx, "evaluate", evaluate)
    metrics, result, ranker = outcome["metrics"], outcome["result"], outcome["ranker"]
    report.print_metrics(metrics)
    report.print_ranker(ranker.model, ranker.message)
    if json_path:
        payload = report.metrics_json(metrics, ctx.cfg, dataset_kind(ctx.cfg))
        payload["ranker"] = {"message": ranker.message, "trained": ranker.model is not None,
                             **({"importances": ranker.model.importances, "metrics": ranker.model.metrics,
                                 "new_item_bar": ranker.model.new_item_bar} if ranker.model else {})}
        if tune:
            payload["tuned"] = {"als_for_als": result.als_for_als.model_dump(),
                                "als_for_hybrid": result.als_for_hybrid.model_dump(),
                                "blend": result.blend.__dict__, "trials": len(result.trials)}
        Path(json_path).write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
        if ctx.cfg.evaluate.chart:
            chart = str(Path(json_path).with_suffix(".png"))
            report.write_chart(metrics, chart, ctx.cfg.evaluate.ks[0], ctx.cfg.evaluate.cold_k)
            log.info("wrote %s and %s", json_path, chart)


def _experiment(ctx, json_path: str | None) -> None:
    from hybridrec.quality.experiment import write_chart
    from hybridrec.steps import run_step
    from hybridrec.steps.experiment import run_experiment

    outcome = {}

    def experiment(ctx, record) -> None:
        outcome["table"] = table = run_experiment(ctx)
        record.row_counts["arms"] = len(table)

    run_step(ctx, "experiment", experiment)
    table = outcome["table"]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if json_path:
        Path(json_path).write_text(json.dumps(table.to_dict("records"), indent=2, default=str), encoding="utf-8")
        chart = str(Path(json_path).with_suffix(".png"))
        write_chart(table, chart, str(table["metric"].iloc[0]))
        log.info("wrote %s and %s", json_path, chart)


def _tune(ctx, out: str) -> None:
    from hybridrec.quality.tuning import tuned_config_toml
    from hybridrec.steps import run_step
    from hybridrec.steps.evaluation import run_tuning

    outcome = {}

    def tune(ctx, record) -> None:
        outcome["result"] = run_tuning(ctx)
        record.row_counts["trials"] = len(outcome["result"].trials)

    run_step(ctx, "tune", tune)
    result = outcome["result"]
    key = f"ndcg@{ctx.cfg.tune.k}"
    Path(out).write_text(tuned_config_toml(result, key), encoding="utf-8")
    trials_path = Path(out).with_suffix(".trials.csv")
    result.trials.to_csv(trials_path, index=False)
    log.info("wrote %s (chosen settings) and %s (%d trials)", out, trials_path, len(result.trials))


if __name__ == "__main__":
    sys.exit(main())
