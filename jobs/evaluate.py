"""spark-submit entry point: hybridrec evaluate (arguments as for `hybridrec evaluate`)."""

import sys

from hybridrec.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
