"""The one place a SparkSession is built (jobs and the CLI call this; the library never does).

Delta Lake and s3a are JVM packages. `make setup` fetches them once (pom.xml) into
`<venv>/share/hybridrec/jars`; a session started from Python puts them on `spark.jars`. A driver
started by spark-submit already has its classpath, so the jars must come with the command
(`--jars "$(hybridrec jars)"` or `--packages`); the session then only checks they are there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from py4j.java_gateway import JavaClass
from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

from hybridrec.config import Config, S3Config
from hybridrec.errors import JvmDependencyError
from hybridrec.io.storage import child, is_remote

DELTA_CLASS = "io.delta.tables.DeltaTable"
LOG_STORE_CLASS = "hybridrec.delta.S3ConditionalPutLogStore"


def jars_dir(cfg: Config) -> Path:
    return Path(cfg.spark.jars_dir or os.environ.get("HYBRIDREC_JARS_DIR") or Path(sys.prefix) / "share" / "hybridrec" / "jars")


def jar_paths(cfg: Config) -> list[str]:
    """Every jar `make setup` fetched (Delta, s3a, hybridrec's LogStore), for spark.jars or --jars."""
    folder = jars_dir(cfg)
    jars = sorted(str(p) for p in folder.glob("*.jar"))
    if not jars:
        raise JvmDependencyError(f"no Spark JVM packages in {folder}: run `make setup` (fetches them with Maven from "
                                 "pom.xml), or set spark.jars_dir to a folder holding them")
    return jars


def s3_settings(s3: S3Config) -> dict[str, str]:
    """Hadoop s3a settings from the [s3] section (credentials only when given: otherwise AWS's chain)."""
    out = {"spark.hadoop.fs.s3a.endpoint.region": s3.region,
           "spark.hadoop.fs.s3a.path.style.access": str(s3.path_style_access).lower()}
    if s3.endpoint:
        out["spark.hadoop.fs.s3a.endpoint"] = s3.endpoint
        out["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(s3.endpoint.startswith("https")).lower()
    if s3.access_key:
        out["spark.hadoop.fs.s3a.access.key"] = s3.access_key
        out["spark.hadoop.fs.s3a.secret.key"] = s3.secret_key
    return out


def delta_settings(cfg: Config) -> dict[str, str]:
    return {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # Commits to s3a:// are made exclusive across drivers by S3 conditional writes (lib/jvm).
        "spark.delta.logStore.s3a.impl": LOG_STORE_CLASS,
        # Delta's default of 50 partitions for reading a table's log is for big tables; ours are small.
        "spark.databricks.delta.snapshotPartitions": str(cfg.spark.shuffle_partitions),
        # `hybridrec vacuum` checks retention itself (lakehouse.vacuum_min_retention_hours).
        "spark.databricks.delta.retentionDurationCheck.enabled": "false",
        # VACUUM lists a table's folders as a Spark job of this many tasks (Spark's default: 10,000).
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(cfg.spark.shuffle_partitions * 4),
    }


def build_spark_session(cfg: Config) -> SparkSession:
    # Workers must find the model offline and load it with one torch thread per task.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Each task already has a core: a native BLAS (ALS, numpy in workers) must not spawn threads per task.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    submitted = bool(os.environ.get("PYSPARK_GATEWAY_PORT"))
    if submitted:
        # Started by spark-submit: attach to its JVM first, or SparkConf() would be empty and the
        # config's master would silently replace --master (local mode instead of the cluster).
        SparkContext._ensure_initialized()
    existing = SparkConf()  # holds what spark-submit passed (master, --conf, --jars ...)
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
        **delta_settings(cfg),
        **s3_settings(cfg.s3),
        **cfg.spark.conf,
    }
    if not submitted and not existing.contains("spark.jars.packages"):
        extra = [existing.get("spark.jars", ""), cfg.spark.conf.get("spark.jars", "")]
        settings["spark.jars"] = ",".join([*jar_paths(cfg), *filter(None, extra)])
    for key, value in settings.items():
        if key == "spark.jars" or not existing.contains(key):
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    _check_classpath(spark, cfg)
    spark.sparkContext.setCheckpointDir(child(_absolute(cfg.lakehouse.root), "_checkpoints"))
    return spark


def _absolute(root: str) -> str:
    return root if is_remote(root) else str(Path(root).expanduser().resolve())


def _has_class(spark: SparkSession, name: str) -> bool:
    target = spark.sparkContext._jvm
    for part in name.split("."):
        target = getattr(target, part)
    return isinstance(target, JavaClass)


def _check_classpath(spark: SparkSession, cfg: Config) -> None:
    needed = [DELTA_CLASS, *([LOG_STORE_CLASS] if is_remote(cfg.lakehouse.root) else [])]
    missing = [name for name in needed if not _has_class(spark, name)]
    if missing:
        raise JvmDependencyError(
            f"Spark JVM classes missing: {missing}. With spark-submit pass the jars `make setup` fetched: "
            f"--jars \"$(hybridrec jars)\" (they are in {jars_dir(cfg)}); see README, Running on a cluster")
