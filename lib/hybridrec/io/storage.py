"""Where the lakehouse lives: a local folder or an object store (`s3a://bucket/prefix`).

Path arithmetic for both, and the few file-system questions the steps ask, answered through
Hadoop's FileSystem in the Spark JVM so that local disk and object storage behave alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def is_remote(path: str) -> bool:
    """True for object-store and other URI paths (s3a://...), false for local paths and file://."""
    return "://" in path and not path.startswith("file:")


def table_path(root: str, name: str) -> str:
    """The folder of table `name` under the lakehouse root (local paths made absolute)."""
    if is_remote(root):
        return f"{root.rstrip('/')}/{name}"
    return str(Path(root.removeprefix("file://")).expanduser().resolve() / name)


def child(path: str, *parts: str) -> str:
    if is_remote(path):
        return "/".join([path.rstrip("/"), *parts])
    return str(Path(path).joinpath(*parts))


def _fs(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    jpath = jvm.org.apache.hadoop.fs.Path(path)
    return jpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), jpath


def exists(spark: SparkSession, path: str) -> bool:
    if not is_remote(path):
        return Path(path).exists()
    fs, jpath = _fs(spark, path)
    return bool(fs.exists(jpath))


def upload_folder(spark: SparkSession, local: Path, remote: str) -> None:
    """Copy a local folder's files to `remote` (object storage), keeping the local folder. One plain
    create-and-write per file: s3a's copyFromLocalFile goes through the SDK's async transfer manager,
    whose HTTP client the pinned jars leave out (it waited forever; measured on the cluster test)."""
    for file in sorted(p for p in Path(local).rglob("*") if p.is_file()):
        write_bytes(spark, child(remote, *file.relative_to(local).parts), file.read_bytes())


def write_bytes(spark: SparkSession, path: str, data: bytes) -> None:
    fs, jpath = _fs(spark, path)
    out = fs.create(jpath, True)
    try:
        out.write(bytearray(data))
    finally:
        out.close()


def write_text(spark: SparkSession, path: str, text: str) -> None:
    if not is_remote(path):
        Path(path).write_text(text, encoding="utf-8")
        return
    write_bytes(spark, path, text.encode("utf-8"))


def list_names(spark: SparkSession, folder: str) -> list[str]:
    """The file names directly in `folder` ([] when it does not exist)."""
    if not is_remote(folder):
        return sorted(p.name for p in Path(folder).iterdir()) if Path(folder).is_dir() else []
    fs, jpath = _fs(spark, folder)
    if not fs.exists(jpath):
        return []
    return sorted(status.getPath().getName() for status in fs.listStatus(jpath))


def download_folder(spark: SparkSession, remote: str, local: Path) -> None:
    """Copy every file under `remote` (object storage) into `local`, keeping relative paths; the
    counterpart of upload_folder."""
    fs, root = _fs(spark, remote)
    io_utils = spark.sparkContext._jvm.org.apache.commons.io.IOUtils
    files = fs.listFiles(root, True)
    while files.hasNext():
        status = files.next()
        relative = status.getPath().toUri().getPath()[len(root.toUri().getPath()):].lstrip("/")
        stream = fs.open(status.getPath())
        try:
            data = bytes(io_utils.toByteArray(stream))
        finally:
            stream.close()
        (local / relative).parent.mkdir(parents=True, exist_ok=True)
        (local / relative).write_bytes(data)


def read_text(spark: SparkSession, path: str) -> str:
    if not is_remote(path):
        return Path(path).read_text(encoding="utf-8")
    fs, jpath = _fs(spark, path)
    stream = fs.open(jpath)
    try:
        jvm = spark.sparkContext._jvm
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()
