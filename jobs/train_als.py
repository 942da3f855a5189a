"""spark-submit entry point for the train_als step: `spark-submit jobs/train_als.py --ds YYYY-MM-DD [--config FILE]`."""

import sys

from hybridrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["train_als", *sys.argv[1:]]))
