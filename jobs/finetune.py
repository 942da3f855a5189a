"""spark-submit entry point for the weekly encoder fine-tuning (a new version in encoder_versions):
`spark-submit jobs/finetune.py --ds YYYY-MM-DD [--config FILE] [--set key=value ...]`."""

import sys

from hybridrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["finetune", *sys.argv[1:]]))
