"""spark-submit entry point: hybridrec tune (arguments as for `hybridrec tune`)."""

import sys

from hybridrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
