"""Seconds per delta-spark operation on a small partitioned table (warm session), the costs that
dominate a night on small data: `python -m benchmarks.delta_ops [--repeat N]`."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from pyspark.sql import functions as F


def _timed(label: str, action: Callable[[], object], repeat: int) -> None:
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - start)
    print(f"{label:58s} {' '.join(f'{s:.2f}' for s in seconds)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.delta_ops", description=__doc__)
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args(argv)
    from delta.tables import DeltaTable

    from hybridrec.config import load_config
    from hybridrec.session import build_spark_session

    spark = build_spark_session(load_config(overrides=['spark.master="local[2]"', "spark.shuffle_partitions=2"]))
    spark.sparkContext.setLogLevel("ERROR")
    path = str(Path(tempfile.mkdtemp(prefix="delta-ops-")) / "t")

    def night(day: int, rows: int = 100):
        return spark.range(rows).withColumn("ds", F.lit(date(2026, 11, day)))

    night(1).write.format("delta").partitionBy("ds").save(path)
    for day in range(2, 10):
        night(day).write.format("delta").mode("append").save(path)
    def replace():
        return (night(1).write.format("delta").mode("overwrite")
                   .option("replaceWhere", "ds = DATE'2026-11-01'").save(path))
    _timed("replaceWhere, one 100-row partition", replace, args.repeat)
    spark.conf.set("spark.databricks.delta.replaceWhere.constraintCheck.enabled", "false")
    _timed("  same, replaceWhere.constraintCheck.enabled=false", replace, args.repeat)
    spark.conf.unset("spark.databricks.delta.replaceWhere.constraintCheck.enabled")
    spark.conf.set("spark.databricks.delta.stats.collect", "false")
    _timed("  same, stats.collect=false", replace, args.repeat)
    spark.conf.unset("spark.databricks.delta.stats.collect")
    _timed("dynamic partition overwrite instead", lambda: night(1).write.format("delta").mode("overwrite")
           .option("partitionOverwriteMode", "dynamic").save(path), args.repeat)
    _timed("append one row", lambda: night(1, 1).write.format("delta").mode("append").save(path), args.repeat)
    one = spark.read.format("delta").load(path).where("ds = DATE'2026-11-03'")
    _timed("isEmpty() of one partition", lambda: spark.read.format("delta").load(path)
           .where("ds = DATE'2026-11-03'").isEmpty(), args.repeat)
    _timed("inputFiles() of one partition", lambda: one.inputFiles(), args.repeat)
    _timed("DESCRIBE HISTORY limit 1", lambda: DeltaTable.forPath(spark, path).history(1).collect(), args.repeat)
    _timed("DeltaTable.isDeltaTable", lambda: DeltaTable.isDeltaTable(spark, path), args.repeat)
    _timed("forPath(...).toDF().schema", lambda: DeltaTable.forPath(spark, path).toDF().schema, args.repeat)
    from hybridrec.io.delta import commits
    _timed("hybridrec.io.delta.commits(newest=1) (reads _delta_log)", lambda: commits(spark, path, newest=1),
           args.repeat)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
