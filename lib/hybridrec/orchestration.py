"""What the Airflow DAGs share: how a step becomes a spark-submit. Imports only the standard
library at module level, so DAG files stay cheap to parse (Airflow operators load on use).

Everything comes from the environment of the Airflow workers, with defaults that work when the
DAGs run from a checkout of this repository:

  HYBRIDREC_HOME         repository (or unpacked release) holding jobs/*.py   default: this checkout
  HYBRIDREC_CONFIG       TOML passed as --config to every job                  default: none (shipped defaults)
  HYBRIDREC_SPARK_CONN   Airflow connection id of the Spark master             default: spark_default
  HYBRIDREC_PYTHON       Python with hybridrec installed, for driver and workers (PYSPARK_PYTHON)
                                                                               default: unset (spark-submit's own)
  HYBRIDREC_SPARK_CONF   extra spark-submit --conf pairs as JSON               default: {}
  HYBRIDREC_JARS_DIR     the Spark JVM packages `make setup` fetched (Delta, s3a, hybridrec's own)
                         passed as --jars                  default: <venv of HYBRIDREC_PYTHON>/share/hybridrec/jars

spark-submit must be on the worker's PATH (the Spark provider only runs binaries found there).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def home() -> str:
    # lib/hybridrec/orchestration.py -> the checkout; a wheel install must set HYBRIDREC_HOME.
    return os.environ.get("HYBRIDREC_HOME", str(Path(__file__).resolve().parents[2]))


def conn_id() -> str:
    return os.environ.get("HYBRIDREC_SPARK_CONN", "spark_default")


def config_args() -> list[str]:
    config = os.environ.get("HYBRIDREC_CONFIG", "")
    return ["--config", config] if config else []


def env_vars() -> dict[str, str]:
    python = os.environ.get("HYBRIDREC_PYTHON", "")
    return {"PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python} if python else {}


def spark_conf() -> dict[str, str]:
    return json.loads(os.environ.get("HYBRIDREC_SPARK_CONF", "{}"))


def jars() -> str:
    """Comma-separated jar paths for spark-submit --jars (a driver started by spark-submit cannot add
    them itself). Globbing a folder is cheap enough for DAG parsing."""
    folder = os.environ.get("HYBRIDREC_JARS_DIR")
    if not folder:
        python = os.environ.get("HYBRIDREC_PYTHON", "")
        prefix = Path(python).parent.parent if python else Path(sys.prefix)
        folder = str(prefix / "share" / "hybridrec" / "jars")
    return ",".join(sorted(str(p) for p in Path(folder).glob("*.jar")))


def job(step: str) -> str:
    return f"{home()}/jobs/{step}.py"


def spark_submit(step: str, *extra_args: str):
    """A SparkSubmitOperator running jobs/<step>.py for the run's logical date."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    return SparkSubmitOperator(
        task_id=step,
        application=job(step),
        application_args=["--ds", "{{ ds }}", *config_args(), *extra_args],
        conn_id=conn_id(),
        name=f"hybridrec-{step}-{{{{ ds }}}}",
        conf=spark_conf(),
        jars=jars(),
        env_vars=env_vars(),
    )


def submit_nightly(ds: str) -> None:
    """One full nightly run for ds through spark-submit (used by the backfill, one date at a time)."""
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    hook = SparkSubmitHook(conn_id=conn_id(), conf=spark_conf(), name=f"hybridrec-backfill-{ds}", jars=jars(),
                           application_args=["--ds", ds, *config_args()], env_vars=env_vars())
    hook.submit(application=job("nightly"))
