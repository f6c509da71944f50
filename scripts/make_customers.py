#!/usr/bin/env python
"""Generate the synthetic customer base (and event log) used by demos, tests and benchmarks.

    python scripts/make_customers.py -n 10000000 -o data/customers.arrow [--events data/events.parquet]

The same as ``segmint generate``; kept here so benchmark scripts have a stable entry point.
"""
import sys

from segmint.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
