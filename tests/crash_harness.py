"""Runs one nightly step in its own process group and SIGKILLs the whole group (driver, JVM, Python
workers) at a chosen point of one table's write, the way a lost container dies. Used by test_crashes.

    python tests/crash_harness.py STEP DS TABLE PHASE SETTING...

PHASE: staged (Spark has written the Parquet files, none moved into the table), moving (one file
moved into the table folder, the rest still staged), before_commit (every file in place, no Delta
commit yet), runs_record (the step's row for the `runs` table, before it is committed).
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import date


def _die() -> None:
    sys.stderr.write("crash_harness: SIGKILL\n")
    sys.stderr.flush()
    os.killpg(os.getpgid(0), signal.SIGKILL)


def _arm(table: str, phase: str) -> None:
    from hybridrec.io import delta

    if phase in ("staged", "moving"):
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if f"/{table}/" in str(dst) and str(dst).endswith(".parquet"):
                if phase == "staged":
                    _die()
                real_replace(src, dst, *args, **kwargs)
                _die()
            return real_replace(src, dst, *args, **kwargs)

        os.replace = replace
    elif phase == "before_commit":
        real_commit, real_create = delta._commit, delta._create_table

        def commit(dt, spec, *args, **kwargs):
            if spec.name == table:
                _die()
            return real_commit(dt, spec, *args, **kwargs)

        def create(path, spec, *args, **kwargs):
            if spec.name == table:
                _die()
            return real_create(path, spec, *args, **kwargs)

        delta._commit, delta._create_table = commit, create
    elif phase == "driver_append":
        import hybridrec.offline
        import hybridrec.runs

        real_append = delta.append_rows

        def append_rows(rows, root, spec, **kwargs):
            if spec.name == table:
                _die()
            return real_append(rows, root, spec, **kwargs)

        hybridrec.runs.append_rows = hybridrec.offline.append_rows = append_rows
    else:
        raise SystemExit(f"unknown phase {phase!r}")


def main() -> None:
    step, ds, table, phase, *settings = sys.argv[1:]
    from hybridrec.config import load_config
    from hybridrec.pipeline import RunContext, run_steps
    from hybridrec.session import build_spark_session

    cfg = load_config(overrides=settings)
    _arm(table, phase)
    spark = build_spark_session(cfg)
    run_steps(RunContext(spark=spark, cfg=cfg, ds=date.fromisoformat(ds)), (step,))
    raise SystemExit(f"crash_harness: step {step} finished without reaching {phase} of {table}")


if __name__ == "__main__":
    main()
