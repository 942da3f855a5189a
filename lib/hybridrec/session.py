"""The one place a SparkSession is built (jobs and the CLI call this; the library never does)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

from hybridrec.config import Config


def build_spark_session(cfg: Config) -> SparkSession:
    # Workers must find the model offline and load it with one torch thread per task.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Each task already has a core: a native BLAS (ALS, numpy in workers) must not spawn threads per task.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        # Started by spark-submit: attach to its JVM first, or SparkConf() would be empty and the
        # config's master would silently replace --master (local mode instead of the cluster).
        SparkContext._ensure_initialized()
    existing = SparkConf()  # holds what spark-submit passed (master, --conf ...)
    builder = SparkSession.builder.appName(cfg.spark.app_name)
    if not existing.contains("spark.master"):
        builder = builder.master(cfg.spark.master)
        builder = builder.config("spark.driver.memory", cfg.spark.driver_memory)
    if not (existing.contains("spark.pyspark.python") or os.environ.get("PYSPARK_PYTHON")):
        # Workers must use this interpreter (the venv) or they miss packages; PySpark reads
        # the variable, not spark.pyspark.python, when the driver starts from Python.
        os.environ["PYSPARK_PYTHON"] = sys.executable
    settings = {
        "spark.sql.shuffle.partitions": str(cfg.spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(cfg.spark.arrow_max_records_per_batch),
        # Delta readers (delta-rs, DuckDB) expect INT64 micros, not Spark's legacy INT96.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.python.worker.reuse": "true",
        "spark.ui.showConsoleProgress": "false",  # step logs report progress; bars clutter scheduler logs
        "spark.executorEnv.HF_HUB_OFFLINE": "1",
        "spark.executorEnv.TOKENIZERS_PARALLELISM": "false",
        "spark.executorEnv.OPENBLAS_NUM_THREADS": "1",
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
        **cfg.spark.conf,
    }
    for key, value in settings.items():
        if not existing.contains(key):
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    checkpoint_dir = Path(cfg.lakehouse.root).expanduser().resolve() / "_checkpoints"
    spark.sparkContext.setCheckpointDir(str(checkpoint_dir))
    return spark
