"""Run N bots against a server; each races its match to the end and reports what it saw.

python -m clients.bots --url ws://127.0.0.1:8765 --bots 8
"""

from __future__ import annotations

import argparse
import math
import sys

import trio

from gameserver.bots import run_bots, summarize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default="ws://127.0.0.1:8765")
    parser.add_argument("--bots", type=int, default=8)
    parser.add_argument("--input-rate", type=float, default=20.0, help="inputs per second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--token", default=None)
    args = parser.parse_args(argv)
    if args.bots < 1 or not math.isfinite(args.input_rate) or args.input_rate <= 0:
        parser.error("--bots and --input-rate must be positive")
    reports = trio.run(
        lambda: run_bots(
            args.url, args.bots, input_rate_hz=args.input_rate, seed=args.seed, token=args.token
        )
    )
    print(summarize(reports))
    failed = [r for r in reports if r.error or r.results is None]
    desyncs = sum(r.statistics.desyncs for r in reports if r.statistics)
    print(f"{len(reports) - len(failed)}/{len(reports)} bots got results; desyncs: {desyncs}")
    return 1 if failed or desyncs else 0


if __name__ == "__main__":
    sys.exit(main())
