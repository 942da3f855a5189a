"""spark-submit entry point for the ingest step: `spark-submit jobs/ingest.py --ds YYYY-MM-DD [--config FILE]`."""

import sys

from hybridrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
