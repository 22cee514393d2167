"""Coordinator benchmark on a throwaway PostgreSQL cluster (or an existing server with ``--url``); the
measurements live in ``ferrolock._bench_coord`` (``ferrolock bench --url URL`` runs them too).

    python bench/bench_coord.py [--quick] [--url postgresql://...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ferrolock._bench_coord import lease_of, run, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "coord"))
from pg import PgCluster

LEASE = "2s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--url", help="an existing server (default: a throwaway cluster)")
    parser.add_argument("--json", metavar="FILE", help="also write raw results as JSON")
    args = parser.parse_args()
    cluster = None
    url = args.url
    if url is None:
        cluster = PgCluster.create().start()
        url = cluster.url(lease=LEASE)
    try:
        results = run(url, args.quick)
    finally:
        if cluster is not None:
            cluster.remove()
    print(table(results, lease_of(url)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
