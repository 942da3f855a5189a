"""The test suite's shared fixtures (tests/conftest.py: the local[2] session, the S3 server, the test
settings), loaded here so the benchmarks' toy-size tests run on the same session setup."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_path = Path(__file__).parents[2] / "tests" / "conftest.py"
_spec = importlib.util.spec_from_file_location("hybridrec_tests_conftest", _path)
_shared = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _shared  # dataclasses defined there look their module up by name
_spec.loader.exec_module(_shared)

spark = _shared.spark
s3_server = _shared.s3_server
make_config = _shared.make_config
REAL_MODEL = _shared.REAL_MODEL
