"""A real Spark standalone cluster on loopback: a master and one worker from the pyspark package,
always stopped on exit."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).parent


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


class StandaloneCluster:
    """`with StandaloneCluster(folder) as master:` -> "spark://127.0.0.1:PORT" once the worker is
    registered; executors work under folder/work (where they unpack shipped archives)."""

    def __init__(self, folder: Path, cores: int = 2, memory: str = "4g"):
        self.folder, self.cores, self.memory = folder, cores, memory
        self.work = folder / "work"
        self._processes: list[subprocess.Popen] = []
        self._logs: list = []

    def __enter__(self) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOG_DIR": str(self.folder / "logs"),
               "SPARK_WORKER_DIR": str(self.work)}
        port, ui_port, worker_ui = _free_port(), _free_port(), _free_port()
        spark_class = str(SPARK_HOME / "bin" / "spark-class")
        self._logs = [open(self.folder / name, "w") for name in ("master.log", "worker.log")]
        try:
            self._processes.append(subprocess.Popen(
                [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                 "--webui-port", str(ui_port)], env=env, stdout=self._logs[0], stderr=subprocess.STDOUT))
            self._processes.append(subprocess.Popen(
                [spark_class, "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}", "--host",
                 "127.0.0.1", "--cores", str(self.cores), "--memory", self.memory, "--webui-port", str(worker_ui),
                 "--work-dir", str(self.work)], env=env, stdout=self._logs[1], stderr=subprocess.STDOUT))
            deadline = time.monotonic() + 120
            while _alive_workers(ui_port) < 1:
                assert time.monotonic() < deadline, (self.folder / "worker.log").read_text()[-3000:]
                assert all(p.poll() is None for p in self._processes), (self.folder / "master.log").read_text()[-3000:]
                time.sleep(1)
        except BaseException:
            self.__exit__()
            raise
        return f"spark://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        for p in self._processes[::-1]:
            p.terminate()
        for p in self._processes:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in self._logs:
            log.close()
