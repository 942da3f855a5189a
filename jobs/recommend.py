"""spark-submit entry point for the recommend step: `spark-submit jobs/recommend.py --ds YYYY-MM-DD [--config FILE]`."""

import sys

from hybridrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["recommend", *sys.argv[1:]]))
