"""The Airflow DAGs, for real: parsed by Airflow, then run with dag.test() in temporary Airflow homes
on tiny synthetic data: the nightly DAG against local Spark, and at the same time the backfill DAG
against a real Spark standalone cluster (tests/standalone_cluster.py) with the Python environment
shipped as a venv-pack archive (`make pack`, no torch in it), the JVM packages as --jars and the
lakehouse on the S3 server: what the README tells a cluster user to do. Airflow runs in subprocesses
(tests/airflow_harness.py) so its configuration never leaks into the shared Spark session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from datetime import date
from pathlib import Path

import pytest
from deltalake import DeltaTable

from conftest import SPARK_CONF, make_config
from hybridrec import analytics
from hybridrec import schema as S
from standalone_cluster import SPARK_HOME, StandaloneCluster

REPO = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).parents[1] / "airflow_harness.py"
N_USERS, N_ROSTER_ONLY, TOP_N = 40, 3, 5
STEPS = ["ingest", "embed_items", "train_als", "gate", "recommend", "summary"]


def _config(lakehouse: str, **sections: dict) -> str:
    """The tests' settings as TOML; `sections` add to or override them."""
    settings = {
        "lakehouse": {"root": lakehouse},
        "dataset": {"kind": "synthetic"},
        "synthetic": {"n_users": N_USERS, "n_items": 60, "n_interactions": 600,
                      "n_users_without_history": N_ROSTER_ONLY},
        "spark": {"shuffle_partitions": 2},
        "als": {"rank": 4, "max_iter": 3},
        # hybrid == ALS-only (the linear blend, no ranker), no new-item places and no EASE margin: the
        # real gate runs and passes by construction.
        "recommend": {"top_n": TOP_N, "new_item_slots": 0, "als_weight": 1.0, "recent_weight": 0.0,
                      "popularity_weight": 0.0, "content_weight": 0.0},
        "evaluate": {"cold_k": 5},
        "gate": {"ease_margin_pct": 100.0},
        "ranker": {"enabled": False},
        "tracking": {"enabled": False},  # MLflow has its own test (test_tracking.py)
    }
    for name, values in sections.items():
        settings[name] = {**settings.get(name, {}), **values}
    return "\n".join(f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
                     for name, values in settings.items())


def _environment(base: Path, java_options: str) -> tuple[dict[str, str], Path]:
    """An Airflow home and a lakehouse of their own under `base`; returns (environment, lakehouse)."""
    lakehouse, config = base / "lakehouse", base / "hybridrec.toml"
    config.write_text(_config(str(lakehouse)))
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(base / "airflow_home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "airflow_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW_CONN_HYBRIDREC_SPARK": json.dumps({"conn_type": "spark", "host": "local[2]"}),
        "HYBRIDREC_SPARK_CONN": "hybridrec_spark",
        "HYBRIDREC_HOME": str(REPO),
        "HYBRIDREC_CONFIG": str(config),
        "HYBRIDREC_PYTHON": sys.executable,
        "HYBRIDREC_SPARK_CONF": json.dumps({**SPARK_CONF, "spark.driver.memory": "2g",
                                            "spark.driver.extraJavaOptions": java_options}),
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",  # spark-submit must be on PATH
    }
    env.pop("SPARK_TESTING", None)
    return env, lakehouse


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory, cold_drivers):
    return _environment(tmp_path_factory.mktemp("airflow"), cold_drivers.java_options)


def _run(env, *args, timeout=900):
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_dags_parse_with_the_expected_graph_and_arguments(airflow_env):
    env, _ = airflow_env
    done = _run(env, str(HARNESS), "describe", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["import_errors"] == {}
    nightly, backfill = info["dags"]["hybridrec_nightly"], info["dags"]["hybridrec_backfill"]
    assert (nightly["catchup"], nightly["doc_md"], "hybridrec" in nightly["tags"]) == (False, True, True)
    upstream = {task: spec["upstream"] for task, spec in nightly["tasks"].items()}
    assert upstream == {"ingest": [], "embed_items": ["ingest"], "train_als": ["ingest"],
                        "gate": ["embed_items", "train_als"], "recommend": ["gate"], "summary": ["recommend"]}
    for step, spec in nightly["tasks"].items():
        assert spec["operator"] == "SparkSubmitOperator"
        assert spec["application"] == f"{REPO}/jobs/{step}.py"
        assert spec["application_args"][:4] == ["--ds", "{{ ds }}", "--config", env["HYBRIDREC_CONFIG"]]
        assert spec["conn_id"] == "hybridrec_spark" and spec["timeout_s"] == 3 * 3600
        assert "delta-spark_4.2_2.13-4.4.0.jar" in spec["jars"] and "hybridrec-jvm-" in spec["jars"]
    for step in ("ingest", "gate", "recommend"):  # the steps that can refuse a night take the override
        assert nightly["tasks"][step]["application_args"][-1] == "--force={{ params.force }}"
    assert "--force={{ params.force }}" not in nightly["tasks"]["train_als"]["application_args"]
    assert nightly["tasks"]["gate"]["retries"] == 0 and nightly["tasks"]["ingest"]["retries"] == 2
    assert (nightly["schedule"], backfill["schedule"]) == ("@daily", "None")
    assert backfill["params"] == ["end", "start"]
    assert backfill["tasks"]["run_nights"]["upstream"] == ["nights"]
    assert info["backfill_nights"] == ["2026-11-20", "2026-11-21", "2026-11-22"]  # oldest first, end included
    finetune = info["dags"]["hybridrec_finetune"]  # weekly, one spark-submit of jobs/finetune.py
    assert (finetune["schedule"], list(finetune["tasks"])) == ("@weekly", ["finetune"])
    assert finetune["tasks"]["finetune"]["application"] == f"{REPO}/jobs/finetune.py"
    assert finetune["tasks"]["finetune"]["application_args"][:2] == ["--ds", "{{ ds }}"]
    assert info["backfill_bad_range"] == "backfill: end 2026-11-20 is before start 2026-11-22"


def _start(env, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=REPO)


def _cluster_environment(base: Path, master: str, archive: Path, s3_settings: list[str], java_options: str) -> dict:
    """An Airflow home whose Spark connection is the standalone cluster: executors run the packed
    environment, the lakehouse is on the S3 server, and the learned ranker scores on the executors."""
    base.mkdir()
    env, _ = _environment(base, java_options)
    sections: dict[str, dict] = {}
    for setting in s3_settings:  # 'section.key=<TOML value>'
        key, value = setting.split("=", 1)
        section, name = key.split(".")
        sections.setdefault(section, {})[name] = json.loads(value)
    (base / "hybridrec.toml").write_text(_config(
        sections.pop("lakehouse")["root"], **sections, recommend={"new_item_slots": 2},
        ranker={"enabled": True, "min_train_users": 5, "models": 2, "trees": 20},
        gate={"als_margin_pct": 100.0, "ease_margin_pct": 100.0}))  # the ranker's night passes by construction
    env["AIRFLOW_CONN_HYBRIDREC_SPARK"] = json.dumps({"conn_type": "spark", "host": master,
                                                      "extra": {"deploy-mode": "client"}})
    env["HYBRIDREC_SPARK_CONF"] = json.dumps({
        **SPARK_CONF, "spark.driver.memory": "2g", "spark.executor.memory": "3g",
        "spark.archives": f"{archive}#environment", "spark.pyspark.python": "./environment/bin/python",
        "spark.pyspark.driver.python": sys.executable,
        "spark.driver.extraJavaOptions": java_options, "spark.executor.extraJavaOptions": java_options})
    del env["HYBRIDREC_PYTHON"]  # its PYSPARK_PYTHON would send executors to this machine's venv
    env["SPARK_HOME"] = str(SPARK_HOME)  # spark-submit otherwise looks for pyspark through `python` on PATH
    return env


def _migrate(env) -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_nightly_dag_locally_and_backfill_dag_on_a_standalone_cluster(airflow_env, cold_drivers, s3_server, tmp_path,
                                                                       capsys):
    """The nightly DAG (six spark-submits, local[2]) runs while `make pack` builds the executors'
    environment; then the backfill DAG (one `spark-submit jobs/nightly.py` per date, the path engineers
    use by hand) runs on the cluster. A cold driver keeps about 1.2 of the 2 cores busy, so they overlap."""
    env, lakehouse = airflow_env
    started = time.perf_counter()
    archive = Path(os.environ.get("HYBRIDREC_PACKED_ENV", tmp_path / "pack" / "hybridrec-env.tar.gz"))
    pack = None
    if "HYBRIDREC_PACKED_ENV" not in os.environ:  # set it to reuse an archive across local runs
        pack = subprocess.Popen(["make", "pack", f"PACK_DIR={archive.parent}", f"PYTHON={sys.executable}",
                                 "PACK_COMPRESS=1", "PACK_COMPILE=0"], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root = f"s3a://{s3_server.new_bucket()}/lakehouse"
    with StandaloneCluster(tmp_path / "cluster") as master:
        backfill_env = _cluster_environment(tmp_path / "backfill", master, archive, s3_server.settings(root),
                                            cold_drivers.java_options)
        _migrate(env)
        nightly = _start(env, str(HARNESS), "test", "hybridrec_nightly", "2026-11-22")
        _migrate(backfill_env)  # while the nightly runs
        if pack is not None:
            pack_out = pack.communicate(timeout=1800)[0]
            assert pack.returncode == 0, pack_out[-3000:]
        packed = time.perf_counter()
        backfill = _start(backfill_env, str(HARNESS), "test", "hybridrec_backfill", "2026-11-23",
                          json.dumps({"start": "2026-11-21", "end": "2026-11-21"}))
        nightly_out = nightly.communicate(timeout=1200)[0]
        nightly_done = time.perf_counter()
        backfill_out = backfill.communicate(timeout=1200)[0]
    assert nightly.returncode == 0, nightly_out[-6000:]
    assert backfill.returncode == 0, backfill_out[-6000:]

    recs = DeltaTable(str(lakehouse / "recommendations"))
    rows = recs.to_pyarrow_table(filters=[("ds", "=", date(2026, 11, 22))])
    users = set(rows.column("user_id").to_pylist())
    assert rows.num_rows == len(users) * TOP_N and len(users) == N_USERS + N_ROSTER_ONLY
    runs = DeltaTable(str(lakehouse / "runs")).to_pyarrow_table().to_pylist()
    ended = [r for r in runs if r["status"] != "running"]
    assert sorted(r["step"] for r in ended) == sorted(STEPS)
    assert {r["status"] for r in ended} == {"succeeded"}

    # The backfill's date was computed whole by one run (one spark-submit of jobs/nightly.py on the
    # cluster) and published once; its order over several dates is checked where the DAG is described.
    assert "top 5 for user" in backfill_out  # the summary step's sample
    lake = analytics.Lakehouse.from_config(make_config(root, *s3_server.settings(root)[1:]))
    night = analytics.read_pandas(lake, S.RECOMMENDATIONS)
    assert len(night) == (N_USERS + N_ROSTER_ONLY) * TOP_N and {d.isoformat() for d in night[S.DS]} == {"2026-11-21"}
    [run_id] = set(night[S.RUN_ID])
    runs = analytics.read_pandas(lake, S.RUNS)
    assert sorted(runs[runs["status"] == "succeeded"]["step"]) == sorted(STEPS) and set(runs[S.RUN_ID]) == {run_id}
    metrics = analytics.read_pandas(lake, S.METRICS)
    assert set(metrics[S.STRATEGY]) >= {"popularity", "als", "content", "blend", "hybrid", "ease"}
    assert s3_server.keys(root.removeprefix("s3a://").split("/")[0], "lakehouse/recommendations/_delta_log/")
    # The learned ranker was trained on the driver and scored the lists on the executors (LightGBM shipped).
    [ranker] = analytics.read_pandas(lake, S.RANKERS).to_dict("records")
    assert ranker["status"] == "trained", ranker["message"]
    assert set(night[S.MODEL_VERSION]) == {f"{night[S.MODEL_VERSION].iloc[0].split('.ranker-')[0]}.ranker-{ranker['model_hash']}"}
    # The embeddings were computed by executors running the shipped interpreter.
    assert list((tmp_path / "cluster" / "work").rglob("environment")), "no executor unpacked the shipped environment"
    with tarfile.open(archive) as packed_env:  # ONNX Runtime embeds: no torch, no CUDA; no second pyspark
        shipped = {n.split("site-packages/")[1].split("/")[0] for n in packed_env.getnames() if "site-packages/" in n}
    assert {"onnxruntime", "tokenizers", "hybridrec", "lightgbm"} <= shipped
    assert not {"torch", "nvidia", "triton", "pyspark"} & shipped  # executors use the cluster's pyspark
    with capsys.disabled():
        print(f"\n[airflow e2e] nightly dag.test (local[2]) {nightly_done - started:.1f}s; make pack "
              f"{packed - started:.1f}s ({archive.stat().st_size / 2**20:.0f} MiB), then the backfill of one date "
              f"on the standalone cluster {time.perf_counter() - packed:.1f}s; all at the same time")
