"""Many processes opening one new store at the same moment: how many fail with "database is locked".

Each round makes an empty home and starts ``--processes`` children that each run ``db.connect()`` (create the
file, switch it to WAL, run the migrations) and exit; the count of children that failed is printed with the
first error. A stress run, not a speed benchmark: a race shows only over many rounds.

Usage: python benchmarks/stress_new_store.py [--rounds 60] [--processes 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

CHILD = "from aicache import db\ndb.connect().close()\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--processes", type=int, default=8)
    args = parser.parse_args()
    failed, first_error = 0, ""
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as home:
            env = dict(os.environ, AICACHE_HOME=home)
            children = [
                subprocess.Popen([sys.executable, "-c", CHILD], env=env, stderr=subprocess.PIPE)
                for _ in range(args.processes)
            ]
            for child in children:
                error = child.communicate()[1].decode().strip()
                if child.returncode != 0:
                    failed += 1
                    first_error = first_error or error.splitlines()[-1]
    print(f"{failed} of {args.rounds * args.processes} processes failed to open a new store")
    if first_error:
        print(f"first error: {first_error}")


if __name__ == "__main__":
    main()
