"""Run the Autobahn TestSuite's cases against the real server stack.

The WebSocket hot path (:mod:`gameserver.websocket`, :mod:`gameserver.edge`) is
hand-written RFC 6455, so nothing but a conformance suite says it speaks the
protocol the way every other implementation does. This starts a real
:class:`gameserver.server.Server` in-process (socket edge, tick loop, the echo
route of ``ServerConfig.echo_path``) on 127.0.0.1 with a free port, drives it with
kosoku (a Rust runner of the Autobahn case files, the ``dev`` extra) over
loopback, and prints what each case concluded::

    python -m clients.autobahn                      # all but compression (12.*, 13.*)
    python -m clients.autobahn --cases '6.*' '7.*'  # UTF-8 and closing only
    python -m clients.autobahn --report-dir reports/autobahn --json

Compression (permessage-deflate) is never negotiated by the server, so the
12.* and 13.* cases are always excluded. The exit status is 1 when any case
FAILED (a MUST of RFC 6455 broken, or a wrong closing handshake) or could not
be run (ERROR); NON-STRICT and INFORMATIONAL verdicts are reported, not fatal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from gameserver.config import ServerConfig
from gameserver.race import RaceGame
from gameserver.server import Server

if TYPE_CHECKING:
    from kosoku._kosoku import CaseResult

#: The route the server echoes every message on, and the one kosoku connects to.
ECHO_PATH = "/echo"
#: permessage-deflate: the server offers no extension.
COMPRESSION_CASES = ("12.*", "13.*")
#: Verdicts that conform (Autobahn's "Pass", "Non-Strict", "Info").
PASSING = frozenset({"OK", "NON-STRICT", "INFORMATIONAL"})
#: Closing-handshake verdicts that conform.
PASSING_CLOSE = frozenset({"OK", "INFORMATIONAL"})
#: Result names in the order the summary lists them.
ORDER = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "ERROR")

#: What the Autobahn case groups test (the first number of a case id).
GROUPS = {
    "1": "framing",
    "2": "pings and pongs",
    "3": "reserved bits",
    "4": "opcodes",
    "5": "fragmentation",
    "6": "UTF-8 handling",
    "7": "close handling",
    "9": "limits and performance",
    "10": "miscellaneous",
    "12": "permessage-deflate",
    "13": "permessage-deflate",
}


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    """What kosoku concluded about one case."""

    case_id: str
    behavior: str
    behavior_close: str
    remote_close_code: int | None
    duration_ms: int
    description: str
    result: str
    result_close: str

    @property
    def outcome(self) -> str:
        """The case's verdict; a passing exchange with a wrong close is FAILED."""
        if self.behavior in PASSING and self.behavior_close not in PASSING_CLOSE:
            return "FAILED"
        return self.behavior

    @property
    def group(self) -> str:
        return self.case_id.split(".")[0]

    @property
    def failed(self) -> bool:
        return self.outcome in ("FAILED", "ERROR")


@dataclass(frozen=True, slots=True)
class SuiteRun:
    """One run of the suite: every case's outcome and how long it all took."""

    command: str
    url: str
    cases: tuple[str, ...]
    exclude: tuple[str, ...]
    outcomes: list[CaseOutcome]
    seconds: float

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(o.outcome for o in self.outcomes)
        return {name: found[name] for name in (*ORDER, *sorted(set(found) - set(ORDER)))}

    def group_counts(self) -> dict[str, dict[str, int]]:
        groups: dict[str, Counter[str]] = {}
        for outcome in self.outcomes:
            groups.setdefault(outcome.group, Counter())[outcome.outcome] += 1
        return {
            group: dict(counts) for group, counts in sorted(groups.items(), key=lambda g: int(g[0]))
        }

    @property
    def failures(self) -> list[CaseOutcome]:
        return [o for o in self.outcomes if o.failed]

    @property
    def ok(self) -> bool:
        return bool(self.outcomes) and not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "url": self.url,
            "cases": list(self.cases),
            "exclude": list(self.exclude),
            "seconds": round(self.seconds, 2),
            "total": len(self.outcomes),
            "counts": self.counts,
            "groups": self.group_counts(),
            "failures": [asdict(o) | {"outcome": o.outcome} for o in self.failures],
            "passed": self.ok,
        }


def _outcome(result: CaseResult) -> CaseOutcome:
    """A kosoku ``CaseResult`` as plain data."""
    return CaseOutcome(
        case_id=result.case_id,
        behavior=result.behavior.value,
        behavior_close=result.behavior_close.value,
        remote_close_code=result.remote_close_code,
        duration_ms=result.duration,
        description=result.description,
        result=result.result,
        result_close=result.result_close,
    )


def _run_kosoku(
    url: str, cases: Sequence[str], exclude: Sequence[str], concurrency: int
) -> list[CaseResult]:
    """Run kosoku's fuzzing client to the end (in a worker thread: it is asyncio)."""
    from kosoku import FailureError, run_fuzzingclient

    async def run() -> list[CaseResult]:
        try:
            return list(
                await run_fuzzingclient(url, list(cases), list(exclude), concurrency=concurrency)
            )
        except FailureError as failure:
            return list(failure.results)

    return asyncio.run(run())


def _write_reports(results: list[CaseResult], report_dir: str) -> None:
    """Autobahn's own report files (index.html, index.json, one file per case)."""
    from kosoku._report import write_reports

    write_reports(results, report_dir)


def server_config() -> ServerConfig:
    """The server as deployed, plus the echo route; loopback, any free port, no database."""
    return ServerConfig(host="127.0.0.1", port=0, echo_path=ECHO_PATH, database=None)


async def run_suite(
    cases: Sequence[str] = ("*",),
    exclude: Sequence[str] = (),
    *,
    concurrency: int = 1,
    report_dir: str | None = None,
    command: str = "",
) -> SuiteRun:
    """Start a server, run the selected cases against its echo route, stop the server."""
    excluded = (*COMPRESSION_CASES, *(e for e in exclude if e not in COMPRESSION_CASES))
    config = server_config()
    server = Server(config, RaceGame(tick_rate_hz=config.tick_rate_hz), seed=1)
    start = time.perf_counter()
    refused: ValueError | None = None
    results: list[CaseResult] = []
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.run)
        url = f"ws://127.0.0.1:{port}{ECHO_PATH}"
        try:
            results = await trio.to_thread.run_sync(
                _run_kosoku, url, tuple(cases), excluded, concurrency
            )
        except ValueError as exc:  # kosoku: a pattern that matches no case
            refused = exc
        finally:
            nursery.cancel_scope.cancel()
    if refused is not None:
        raise refused
    seconds = time.perf_counter() - start
    if report_dir is not None and results:
        _write_reports(results, report_dir)
    return SuiteRun(
        command=command,
        url=url,
        cases=tuple(cases),
        exclude=excluded,
        outcomes=[_outcome(r) for r in results],
        seconds=seconds,
    )


def format_summary(run: SuiteRun) -> str:
    """The summary table: counts per result, per case group, then every failure."""
    lines = [f"Autobahn TestSuite (kosoku) against {run.url}", ""]
    counts = run.counts
    shown = [name for name in counts if counts[name] or name in ("OK", "FAILED")]
    lines.append(f"{'result':<14}{'cases':>7}")
    lines += [f"{name:<14}{counts[name]:>7}" for name in shown]
    lines.append(f"{'total':<14}{len(run.outcomes):>7}")
    lines.append("")
    header = f"{'group':<6}{'':<24}" + "".join(f"{name:>15}" for name in shown)
    lines.append(header)
    for group, group_counts in run.group_counts().items():
        title = GROUPS.get(group, "")
        cells = "".join(f"{group_counts.get(name, 0):>15}" for name in shown)
        lines.append(f"{group + '.*':<6}{title:<24}{cells}")
    lines.append("")
    if not run.outcomes:
        lines += ["no case was selected", ""]
    if run.failures:
        lines.append(f"{len(run.failures)} case(s) failed:")
        for case in run.failures:
            close = "" if case.behavior_close in PASSING_CLOSE else f", close {case.behavior_close}"
            lines.append(f"  {case.case_id}: {case.behavior}{close}: {case.description}")
            lines.append(f"      {case.result} {case.result_close}".rstrip())
        lines.append("")
    lines.append(f"excluded: {' '.join(run.exclude)}")
    lines.append(f"reproduce: {run.command}")
    lines.append(f"took {run.seconds:.1f} s")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clients.autobahn",
        description="Run the Autobahn TestSuite (kosoku) against an in-process server.",
    )
    parser.add_argument(
        "--cases",
        nargs="+",
        default=["*"],
        metavar="PATTERN",
        help="case ids or globs, e.g. '1.*' 9.7.1 (default: all)",
    )
    parser.add_argument(
        "--exclude",
        nargs="+",
        default=[],
        metavar="PATTERN",
        help="case ids or globs to leave out (12.* and 13.* always are)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="cases run in parallel (default: 1)"
    )
    parser.add_argument(
        "--report-dir", metavar="DIR", help="also write Autobahn's HTML/JSON reports here"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run."""
    words = ["python", "-m", "clients.autobahn"]
    if args.cases != ["*"]:
        words += ["--cases", *args.cases]
    if args.exclude:
        words += ["--exclude", *args.exclude]
    if args.concurrency != 1:
        words += ["--concurrency", str(args.concurrency)]
    if args.report_dir:
        words += ["--report-dir", args.report_dir]
    if args.json:
        words.append("--json")
    return shlex.join(words)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import kosoku  # noqa: F401
    except ImportError:
        print("kosoku is not installed: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    try:
        run = trio.run(
            partial(
                run_suite,
                args.cases,
                args.exclude,
                concurrency=args.concurrency,
                report_dir=args.report_dir,
                command=command_line(args),
            )
        )
    except ValueError as exc:
        print(f"kosoku: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(run.to_json(), indent=2))
    else:
        print(format_summary(run))
    return 0 if run.ok else 1


if __name__ == "__main__":
    sys.exit(main())
