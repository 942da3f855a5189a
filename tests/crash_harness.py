"""Runs one nightly step in its own process group and SIGKILLs the whole group (driver, JVM, Python
workers) at a chosen point of one table's write, the way a lost container dies. Used by test_crashes.

    python tests/crash_harness.py STEP DS TABLE PHASE KILL_JAR SETTING...

Whoever kills first writes what it killed into the file named by HYBRIDREC_KILL_MARKER.

PHASE: during_write (a Python task of the Spark job that writes TABLE kills the group: the job is
running, none of its files committed), before_commit (every data file of the write is in place;
the JVM SIGKILLs workers, driver and itself as Delta is about to write the commit file:
tests/jvm/KillBeforeCommitLogStore).
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import date

KILL_STORE = "hybridrec.testing.KillBeforeCommitLogStore"


def _arm_during_write(table: str) -> None:
    from hybridrec.io import delta

    real = delta._commit_frame

    def commit_frame(df, path, spec, *args, **kwargs):
        if spec.name == table:
            def kill_in_the_write_job(batches):
                for batch in batches:
                    with open(os.environ["HYBRIDREC_KILL_MARKER"], "w") as marker:  # the JVM eats worker stderr
                        marker.write(f"SIGKILL during the write job of {table}")
                    os.killpg(int(os.environ["HYBRIDREC_KILL_PGID"]), signal.SIGKILL)
                    yield batch

            df = df.mapInArrow(kill_in_the_write_job, df.schema)
        return real(df, path, spec, *args, **kwargs)

    delta._commit_frame = commit_frame


def _before_commit_conf(cfg, kill_jar: str) -> dict[str, str]:
    from hybridrec.session import LOG_STORE_CLASS

    remote = "://" in cfg.lakehouse.root
    scheme, delegate = ("s3a", LOG_STORE_CLASS) if remote else ("file", "io.delta.storage.HDFSLogStore")
    return {"spark.jars": kill_jar, f"spark.delta.logStore.{scheme}.impl": KILL_STORE,
            "spark.hadoop.hybridrec.test.delegate": delegate}


def main() -> None:
    step, ds, table, phase, kill_jar, *settings = sys.argv[1:]
    from hybridrec.config import load_config
    from hybridrec.session import build_spark_session
    from hybridrec.steps import RunContext, run_steps

    os.environ["HYBRIDREC_KILL_PGID"] = str(os.getpgid(0))
    cfg = load_config(overrides=settings)
    if phase == "during_write":
        _arm_during_write(table)
    elif phase == "before_commit":
        os.environ["HYBRIDREC_KILL_TABLE"] = table
        conf = {**cfg.spark.conf, **_before_commit_conf(cfg, kill_jar)}
        cfg = cfg.model_copy(update={"spark": cfg.spark.model_copy(update={"conf": conf})})
    else:
        raise SystemExit(f"unknown phase {phase!r}")
    spark = build_spark_session(cfg)
    run_steps(RunContext(spark=spark, cfg=cfg, ds=date.fromisoformat(ds)), (step,))
    raise SystemExit(f"crash_harness: step {step} finished without reaching {phase} of {table}")


if __name__ == "__main__":
    main()
