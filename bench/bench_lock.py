"""Lock benchmark: ferrolock against blocking fcntl.flock (the floor), a legacy fcntl + sleep(0.1) loop,
filelock and portalocker, in spawned processes, printed as a markdown table.

    python bench/bench_lock.py [--quick] [--json FILE]      (the same as `ferrolock bench`)
"""

from __future__ import annotations

import argparse
import sys

from ferrolock.benchmark import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", metavar="FILE", help="also write raw results as JSON")
    args = parser.parse_args()
    sys.exit(main(quick=args.quick, json_path=args.json))
