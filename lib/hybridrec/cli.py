"""Command line: `hybridrec run --ds D` runs every step; `hybridrec <step> --ds D` runs one."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date

from hybridrec.config import load_config, log_config
from hybridrec.errors import HybridrecError

log = logging.getLogger("hybridrec")


def _ds(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--ds expects a date YYYY-MM-DD, got {value!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    from hybridrec.pipeline import STEPS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--ds", type=_ds, required=True, help="run date YYYY-MM-DD (the night being computed)")
    common.add_argument("--config", help="TOML file overriding the shipped defaults")
    common.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set recommend.top_n=20 (repeatable)")
    common.add_argument("--run-id", default="", help="run id to record (default: generated)")
    parser = argparse.ArgumentParser(prog="hybridrec", description="Nightly hybrid recommender on Spark.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", parents=[common], help="run every step: " + " -> ".join(STEPS))
    for step in STEPS:
        sub.add_parser(step, parents=[common], help=f"run the {step} step only")
    return parser


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("py4j").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        cfg = load_config(args.config, args.overrides)
    except HybridrecError as exc:
        log.error("%s", exc)
        return 2
    log_config(cfg)

    from hybridrec.pipeline import STEPS, RunContext, run_steps
    from hybridrec.session import build_spark_session

    spark = build_spark_session(cfg)
    spark.sparkContext.setLogLevel("WARN")
    ctx = RunContext(spark=spark, cfg=cfg, ds=args.ds, run_id=args.run_id)
    steps = STEPS if args.command == "run" else (args.command,)
    log.info("run %s: ds %s, steps %s", ctx.run_id, ctx.ds_str, ", ".join(steps))
    try:
        run_steps(ctx, steps)
    except HybridrecError as exc:
        log.error("run %s failed: %s", ctx.run_id, exc)
        return 1
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
