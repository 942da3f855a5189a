"""spark-submit entry point for the summary step: `spark-submit jobs/summary.py --ds YYYY-MM-DD [--config FILE]`."""

import sys

from hybridrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["summary", *sys.argv[1:]]))
