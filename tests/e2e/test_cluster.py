"""A real Spark standalone cluster on loopback (master + one worker from the pyspark package),
`spark-submit jobs/nightly.py` to it with the Python environment shipped as a venv-pack archive
(`make pack`, no torch in it) and the JVM packages as --jars, writing the lakehouse to the S3 server,
exactly as the README tells a cluster user to do. The cluster is always stopped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import pyspark
import pytest

from conftest import make_config
from hybridrec import analytics
from hybridrec import schema as S

REPO = Path(__file__).resolve().parents[2]
SPARK_HOME = Path(pyspark.__file__).parent
N_USERS, N_ROSTER_ONLY, TOP_N = 40, 3, 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as response:
            return int(json.load(response).get("aliveworkers", 0))
    except OSError:
        return 0


@pytest.fixture
def standalone_cluster(tmp_path):
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOG_DIR": str(tmp_path / "logs"),
           "SPARK_WORKER_DIR": str(tmp_path / "work")}
    port, ui_port, worker_ui = _free_port(), _free_port(), _free_port()
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    logs = [open(tmp_path / name, "w") for name in ("master.log", "worker.log")]
    processes = [subprocess.Popen(
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
         "--webui-port", str(ui_port)], env=env, stdout=logs[0], stderr=subprocess.STDOUT)]
    try:
        processes.append(subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}", "--host", "127.0.0.1",
             "--cores", "2", "--memory", "4g", "--webui-port", str(worker_ui), "--work-dir", str(tmp_path / "work")],
            env=env, stdout=logs[1], stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 120
        while _alive_workers(ui_port) < 1:
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            assert all(p.poll() is None for p in processes), (tmp_path / "master.log").read_text()[-3000:]
            time.sleep(1)
        yield f"spark://127.0.0.1:{port}"
    finally:
        for p in processes[::-1]:
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()


def test_nightly_on_a_standalone_cluster_with_the_shipped_environment(standalone_cluster, s3_server, cold_drivers, tmp_path,
                                                                      capsys):
    started = time.perf_counter()
    archive = Path(os.environ.get("HYBRIDREC_PACKED_ENV", tmp_path / "pack" / "hybridrec-env.tar.gz"))
    if "HYBRIDREC_PACKED_ENV" not in os.environ:  # set it to reuse an archive across local runs
        pack = subprocess.run(["make", "pack", f"PACK_DIR={archive.parent}", f"PYTHON={sys.executable}"],
                              cwd=REPO, capture_output=True, text=True, timeout=1800)
        assert pack.returncode == 0, pack.stderr[-3000:]
    packed = time.perf_counter()

    root = f"s3a://{s3_server.new_bucket()}/lakehouse"
    settings = ['dataset.kind="synthetic"', f"synthetic.n_users={N_USERS}", "synthetic.n_items=60",
                "synthetic.n_interactions=600", f"synthetic.n_users_without_history={N_ROSTER_ONLY}",
                *s3_server.settings(root), f"recommend.top_n={TOP_N}", "recommend.new_item_slots=2",
                "ranker.min_train_users=5", "ranker.models=2", "ranker.trees=20",  # the ranker scores on the executors
                "als.rank=4", "als.max_iter=3", "spark.shuffle_partitions=2", "evaluate.cold_k=5"]
    jars = subprocess.run([str(Path(sys.executable).parent / "hybridrec"), "jars"], capture_output=True, text=True,
                          check=True).stdout.strip()
    cmd = [str(Path(sys.executable).parent / "spark-submit"), "--master", standalone_cluster,
           "--deploy-mode", "client", "--driver-memory", "2g", "--executor-memory", "3g",
           "--archives", f"{archive}#environment", "--jars", jars,
           "--conf", "spark.pyspark.python=./environment/bin/python",
           "--conf", f"spark.pyspark.driver.python={sys.executable}",
           "--conf", "spark.ui.enabled=false",
           "--conf", f"spark.driver.extraJavaOptions={cold_drivers.java_options}",
           "--conf", f"spark.executor.extraJavaOptions={cold_drivers.java_options}",
           str(REPO / "jobs" / "nightly.py"), "--ds", "2026-11-22", "--force"]
    for s in settings:
        cmd += ["--set", s]
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_TESTING")}
    env["SPARK_HOME"] = str(SPARK_HOME)  # spark-submit otherwise looks for pyspark through `python` on PATH
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-6000:]

    lake = analytics.Lakehouse.from_config(make_config(root, *s3_server.settings(root)[1:]))
    recs = analytics.read_pandas(lake, S.RECOMMENDATIONS)
    users = set(recs[S.USER_ID])
    assert len(users) == N_USERS + N_ROSTER_ONLY and len(recs) == len(users) * TOP_N
    assert {d.isoformat() for d in recs[S.DS]} == {"2026-11-22"}
    assert s3_server.keys(root.removeprefix("s3a://").split("/")[0], "lakehouse/recommendations/_delta_log/")
    # The learned ranker was trained on the driver and scored the lists on the executors (LightGBM shipped).
    [ranker] = analytics.read_pandas(lake, S.RANKERS).to_dict("records")
    assert ranker["status"] == "trained", ranker["message"]
    assert set(recs[S.MODEL_VERSION]) == {f"{recs[S.MODEL_VERSION].iloc[0].split('.ranker-')[0]}.ranker-{ranker['model_hash']}"}
    # The embeddings were computed by executors running the shipped interpreter.
    work = list((tmp_path / "work").rglob("environment"))
    assert work, "no executor unpacked the shipped environment"
    with tarfile.open(archive) as packed_env:  # ONNX Runtime embeds: no torch, no CUDA; no second pyspark
        shipped = {n.split("site-packages/")[1].split("/")[0] for n in packed_env.getnames() if "site-packages/" in n}
    assert {"onnxruntime", "tokenizers", "hybridrec", "lightgbm"} <= shipped
    assert not {"torch", "nvidia", "triton", "pyspark"} & shipped  # executors use the cluster's pyspark
    with capsys.disabled():
        print(f"\n[standalone cluster] make pack {packed - started:.1f}s ({archive.stat().st_size / 2**20:.0f} MiB), "
              f"spark-submit nightly {time.perf_counter() - packed:.1f}s")
