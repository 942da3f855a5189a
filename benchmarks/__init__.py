"""Benchmarks of hybridrec against the best single-process tools (not part of the package).

    python -m benchmarks [--quick] [--json FILE]                 # make bench
    python -m benchmarks --scale N [--scale M] [--ivf] [--json FILE]

Peers come from the `bench` extra (`make bench` installs it). Results go to docs/benchmarks.md.
"""
