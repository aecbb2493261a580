"""The load generator against a real server process: its report's numbers are sane."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.loadtest import LoadTest, format_report
from clients.wsframe import FrameReader, mask_frame

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    port_file = tmp_path / "port"
    status_port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gameserver.cli", "serve", "--port", "0",
         "--port-file", str(port_file), "--status-port", str(status_port),
         "--track", "sprint", "--laps", "1", "--lobby-timeout", "1", "--db", ""],
        cwd=REPO,
        env={**os.environ, "GAMESERVER_FILL_WITH_AI": "false", "GAMESERVER_COUNTDOWN_S": "0.5"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield f"ws://127.0.0.1:{int(port_file.read_text())}", status_port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_short_load_test_reports_sane_figures(server: tuple[str, int]) -> None:
    url, status_port = server
    test = LoadTest(url, 8, duration_s=2.0, input_rate_hz=20, until_results=True)
    report = test.run()
    assert report.connections_succeeded == 8
    assert report.connections_failed == 0
    assert report.desyncs == 0
    assert report.frames_verified > 100
    assert report.sampled_bots == 1, "one bot per match decodes every frame"
    assert report.matches_seen == 1
    assert report.matches_finished == 1
    assert report.results_received == 8
    assert report.close_codes == {"1000": 8}
    assert 10 < report.frames_per_client_s <= 61
    assert 20 < report.bytes_per_frame < 200
    assert report.down_bytes_per_client_s > 500
    assert report.up_bytes_per_client_s > 100
    assert 0 < report.input_latency_p50_ms < 500
    assert report.handshake_p50_ms > 0
    assert "desyncs" in format_report(report)
    with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/stats", timeout=5) as reply:
        stats = json.loads(reply.read())
    assert stats["matches_finished"] == 1
    assert stats["ticks"]["ticks"] > 0
    assert stats["close_codes"] == {"1000": 8}
    with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/metrics", timeout=5) as reply:
        assert b"gameserver_ticks_ticks " in reply.read()


def test_client_frames_are_masked_and_server_frames_are_split() -> None:
    frame = mask_frame(0x2, b"hello", mask=b"\x01\x02\x03\x04")
    assert frame[:2] == b"\x82\x85"
    assert bytes(b ^ frame[2 + i % 4] for i, b in enumerate(frame[6:])) == b"hello"
    reader = FrameReader()
    stream = b"\x82\x03abc" + b"\x02\x02de" + b"\x80\x01f" + b"\x88\x02\x03\xe8"
    assert reader.feed(stream[:4]) == []
    assert reader.feed(stream[4:]) == [(0x2, b"abc"), (0x2, b"def"), (0x8, b"\x03\xe8")]
