"""spark-submit entry point for the embed_items step: `spark-submit jobs/embed_items.py --ds YYYY-MM-DD [--config FILE]`."""

import sys

from hybridrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["embed_items", *sys.argv[1:]]))
