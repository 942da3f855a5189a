"""An S3-compatible server on loopback (moto's standalone server, a separate process) and the
settings that point hybridrec at a bucket on it: endpoint, path-style access and credentials, all
through configuration."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ACCESS_KEY, SECRET_KEY, REGION = "hybridrec-test", "hybridrec-test-secret-value", "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log: Path, what: str, timeout_s: float) -> None:
    """Polls `url` until the server `process` answers; fails with the end of its log if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{what} did not start: {log.read_text()[-3000:]}") from None
            time.sleep(0.2)


class S3Server:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> S3Server:
        log = open(self.folder / "moto.log", "w")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT)
        wait_until_up(f"{self.endpoint}/moto-api/", self.process, self.folder / "moto.log", "moto server", 60)
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)

    def new_bucket(self) -> str:
        name = f"lake-{uuid.uuid4().hex[:10]}"
        self.client().create_bucket(Bucket=name)
        return name

    def settings(self, root: str) -> list[str]:
        """--set overrides for a lakehouse at `root` (s3a://bucket/prefix) on this server."""
        return [f'lakehouse.root="{root}"', f's3.endpoint="{self.endpoint}"', f's3.region="{REGION}"',
                "s3.path_style_access=true", f's3.access_key="{ACCESS_KEY}"', f's3.secret_key="{SECRET_KEY}"']

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))
