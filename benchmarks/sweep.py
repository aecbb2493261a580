"""The reference-workload sweep: server CPU, memory, ticks, frames and bytes against client count.

    python -m benchmarks.sweep --sizes 8,64,256,512,1024 --warmup 5 --measure 20

For each design (``ours`` at 60 Hz and 30 Hz frames, then the naive ``json``
and ``msgpack`` full-state baselines at 60 Hz) and each client count N, a
server runs in its own process (:mod:`benchmarks.server_process`) and the load
generator (:mod:`clients.loadtest`) in another, driving N bots in matches of
8 on the ``circle`` track with inputs at 20 Hz. Server CPU and RSS are read
from ``/proc``, ticks from the server's ``/stats`` endpoint, frames, bytes
and latency from the load generator's report, all over the same measured
window. Results go to ``benchmarks/out/`` (JSON, a markdown table, PNG plots).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Point:
    design: str
    send_rate_hz: int
    clients: int
    server_cpu_ms_per_client_s: float
    server_cpu_percent: float
    server_rss_mb: float
    tick_p99_ms: float
    ticks_ratio: float
    frames_ratio: float
    down_bytes_per_client_s: float
    bytes_per_frame: float
    input_latency_p50_ms: float
    input_latency_p99_ms: float
    loadgen_cpu_percent: float
    loadgen_saturated: bool
    desyncs: int
    connections_failed: int


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def server_stats(status_port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{status_port}/stats"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def measure(
    design: str, send_rate_hz: int, clients: int, warmup_s: float, measure_s: float
) -> Point:
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "ports"
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.server_process",
                "--design",
                design,
                "--send-rate",
                str(send_rate_hz),
                "--port-file",
                str(port_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while not port_file.exists() or not port_file.read_text().strip():
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"server ({design}) did not start")
                time.sleep(0.05)
            port, status_port = (int(x) for x in port_file.read_text().split())
            out_path = Path(tmp) / "report.json"
            with out_path.open("w") as out_file:
                loadgen = subprocess.Popen(
                    [sys.executable, "-m", "clients.loadtest", "--url", f"ws://127.0.0.1:{port}",
                     "--bots", str(clients), "--duration", str(measure_s),
                     "--warmup", str(warmup_s), "--max-speed", "30", "--json",
                     *(["--naive"] if design in ("json", "msgpack") else [])],
                    stdout=out_file,
                    stderr=subprocess.PIPE,
                    text=True,
                )  # fmt: skip
                marks: dict[str, Any] = {}
                assert loadgen.stderr is not None
                for line in loadgen.stderr:  # the load generator says when it starts measuring
                    if line.strip() == "measuring" and "cpu" not in marks:
                        marks["cpu"] = cpu_seconds(server.pid)
                        marks["time"] = time.perf_counter()
                        marks["stats"] = server_stats(status_port)
                loadgen.wait(timeout=60)
            end_cpu, end_time = cpu_seconds(server.pid), time.perf_counter()
            end_stats = server_stats(status_port)
            out = out_path.read_text()
            memory = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=10)
    report = json.loads(out)
    if "cpu" not in marks:
        raise RuntimeError(f"load generator never started measuring: {report}")
    wall = end_time - marks["time"]
    cpu = end_cpu - marks["cpu"]
    ticks = end_stats["ticks"]["ticks"] - marks["stats"]["ticks"]["ticks"]
    return Point(
        design=design,
        send_rate_hz=send_rate_hz,
        clients=clients,
        server_cpu_ms_per_client_s=cpu * 1e3 / (clients * wall),
        server_cpu_percent=cpu / wall * 100,
        server_rss_mb=memory,
        tick_p99_ms=end_stats["ticks"]["tick_p99_ms"],
        ticks_ratio=ticks / (wall * 60),
        frames_ratio=report["frames_per_client_s"] / send_rate_hz,
        down_bytes_per_client_s=report["down_bytes_per_client_s"],
        bytes_per_frame=report["bytes_per_frame"],
        input_latency_p50_ms=report["input_latency_p50_ms"],
        input_latency_p99_ms=report["input_latency_p99_ms"],
        loadgen_cpu_percent=report["loadgen_cpu_percent"],
        loadgen_saturated=report["loadgen_saturated"],
        desyncs=report["desyncs"],
        connections_failed=report["connections_failed"],
    )


HEADER = (
    "| design | Hz | N | CPU ms/client-s | CPU % core | RSS MB | tick p99 ms | ticks | frames "
    "| B/client/s | B/frame | input p50/p99 ms | loadgen CPU % |"
)


def table(points: list[Point]) -> str:
    lines = [HEADER, "|" + "---|" * 13]
    for p in points:
        lines.append(
            f"| {p.design} | {p.send_rate_hz} | {p.clients} | {p.server_cpu_ms_per_client_s:.2f} "
            f"| {p.server_cpu_percent:.0f} | {p.server_rss_mb:.0f} | {p.tick_p99_ms:.2f} "
            f"| {p.ticks_ratio:.0%} | {p.frames_ratio:.0%} | {p.down_bytes_per_client_s:,.0f} "
            f"| {p.bytes_per_frame:.1f} "
            f"| {p.input_latency_p50_ms:.0f}/{p.input_latency_p99_ms:.0f} "
            f"| {p.loadgen_cpu_percent:.0f}{'*' if p.loadgen_saturated else ''} |"
        )
    return "\n".join(lines)


def largest_held(points: list[Point], design: str, rate: int) -> int | None:
    held = [
        p.clients
        for p in points
        if p.design == design
        and p.send_rate_hz == rate
        and p.ticks_ratio >= 0.95
        and p.frames_ratio >= 0.95
    ]
    return max(held) if held else None


def ratios(points: list[Point]) -> str:
    ours = {p.clients: p for p in points if p.design == "ours" and p.send_rate_hz == 60}
    lines = ["| N | baseline | bytes ours/baseline | CPU ours/baseline |", "|---|---|---|---|"]
    for p in points:
        if p.design == "ours" or p.clients not in ours:
            continue
        o = ours[p.clients]
        lines.append(
            f"| {p.clients} | {p.design} | "
            f"{o.down_bytes_per_client_s / max(p.down_bytes_per_client_s, 1e-9):.3f} | "
            f"{o.server_cpu_ms_per_client_s / max(p.server_cpu_ms_per_client_s, 1e-9):.2f} |"
        )
    return "\n".join(lines)


def plot(points: list[Point], out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plots", file=sys.stderr)
        return []
    written = []
    for metric, label, name in (
        ("down_bytes_per_client_s", "downstream bytes per client per second", "bytes.png"),
        ("server_cpu_ms_per_client_s", "server CPU ms per client-second", "cpu.png"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for design, rate in sorted({(p.design, p.send_rate_hz) for p in points}):
            series = [p for p in points if p.design == design and p.send_rate_hz == rate]
            ax.plot(
                [p.clients for p in series],
                [getattr(p, metric) for p in series],
                marker="o",
                label=f"{design} {rate} Hz",
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("clients (8 per match)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="reference-workload sweep")
    parser.add_argument("--sizes", default="8,64,256,512,1024")
    parser.add_argument("--designs", default="ours@60,ours@30,ours-tws@60,json@60,msgpack@60")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--measure", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    runs = [(d.split("@")[0], int(d.split("@")[1])) for d in args.designs.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    points: list[Point] = []
    for design, rate in runs:
        for n in sizes:
            point = measure(design, rate, n, args.warmup, args.measure)
            points.append(point)
            print(table([point]).splitlines()[-1], flush=True)
    command = (
        f"python -m benchmarks.sweep --sizes {args.sizes} --designs {args.designs} "
        f"--warmup {args.warmup:g} --measure {args.measure:g}"
    )
    summary = [f"reproduce: {command}", "", table(points), "", ratios(points), ""]
    for design, rate in runs:
        held = largest_held(points, design, rate)
        summary.append(
            f"largest N with >= 95% of ticks and frames, {design} at {rate} Hz: {held or 'none'}"
        )
    text = "\n".join(summary)
    print("\n" + text)
    (args.out / "sweep.md").write_text(text + "\n")
    (args.out / "sweep.json").write_text(json.dumps([asdict(p) for p in points], indent=1))
    for path in plot(points, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
