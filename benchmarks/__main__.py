"""Command line of the benchmarks: stage timings next to their peers (bench), or the whole nightly
at several sizes (scale). See benchmarks/__init__.py."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from hybridrec.cli import configure_logging
from hybridrec.config import load_config, log_config
from hybridrec.session import build_spark_session

log = logging.getLogger("benchmarks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--config", help="TOML file overriding the shipped defaults")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--quick", action="store_true", help="the small sizes (about 10 minutes on 2 cores)")
    parser.add_argument("--json", help="also write the results as JSON here")
    parser.add_argument("--workdir", help="folder for the bench lakehouse (default: a new temporary folder)")
    parser.add_argument("--scale", type=int, action="append", default=[], metavar="INTERACTIONS",
                        help="instead: the whole nightly on synthetic data of this many interactions (repeatable; "
                             "time and peak memory per step, growth between sizes)")
    parser.add_argument("--ivf", action="store_true",
                        help="with --scale: then the recommend step again with recommend.retrieval=ivf, "
                             "timed and compared with exact lists on a sample of users")
    parser.add_argument("--ivf-only", action="store_true",
                        help="with --scale and --workdir: only that comparison, on the lakehouse an earlier "
                             "--scale run left there")
    parser.add_argument("--rerank-only", action="store_true",
                        help="as --ivf-only, with recommend.retrieval=rerank")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging()
    cfg = load_config(args.config, args.overrides)
    log_config(cfg)
    from benchmarks import bench
    from benchmarks import scale as scale_runs

    spark = build_spark_session(cfg)
    spark.sparkContext.setLogLevel("WARN")
    folder = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="hybridrec-bench-"))
    try:
        if args.scale and (args.ivf_only or args.rerank_only):
            mode = "rerank" if args.rerank_only else "ivf"
            result = {"machine": bench.machine(), f"recommend_{mode}": {
                n: scale_runs.compare_retrieval(spark, scale_runs.scale_config(cfg, folder, n), retrieval=mode)
                for n in args.scale}}
            table = json.dumps(result[f"recommend_{mode}"], indent=2)
        elif args.scale:
            runs = []
            for n in sorted(args.scale):
                runs.append(scale_runs.run_scale(spark, cfg, folder, n, ivf=args.ivf))
                log.info("scale %d: %s", n, runs[-1])
            result = scale_runs.scale_result(runs, spark.sparkContext.master)
            table = scale_runs.format_scale(result)
        else:
            result = bench.run_bench(spark, cfg, folder, bench.QUICK if args.quick else bench.FULL)
            table = bench.format_table(result)
    finally:
        spark.stop()
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
