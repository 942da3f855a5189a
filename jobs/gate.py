"""spark-submit entry point: hybridrec gate (arguments as for `hybridrec gate`)."""

import sys

from hybridrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["gate", *sys.argv[1:]]))
