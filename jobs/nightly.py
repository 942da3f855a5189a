"""spark-submit entry point for the whole night in one Spark application:
`spark-submit jobs/nightly.py --ds YYYY-MM-DD [--config FILE] [--set key=value ...]`."""

import sys

from hybridrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
