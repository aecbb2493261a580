"""The operator's HTTP endpoint: ``/stats`` (JSON), ``/metrics`` (Prometheus text), ``/healthz``.

A separate small listener, so load generators, benchmarks and monitoring read
the server's own measurements without speaking the game protocol. HTTP is
parsed by h11 (already underneath wsproto); each request is answered and the
connection closed, with every wait bounded.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from functools import partial
from typing import Any

import h11
import trio

#: Seconds a status client has to send its request.
REQUEST_TIMEOUT_S = 5.0
MAX_REQUEST_BYTES = 16 * 1024

StatsSource = Callable[[], dict[str, Any]]


def to_jsonable(value: Any) -> Any:
    """Dataclasses and enums as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def prometheus_text(stats: dict[str, Any], prefix: str = "gameserver") -> str:
    """Numeric leaves of ``stats`` as Prometheus gauges (nested keys joined by ``_``)."""
    lines: list[str] = []

    def walk(path: str, value: Any) -> None:
        if isinstance(value, bool):
            lines.append(f"{path} {int(value)}")
        elif isinstance(value, int | float):
            lines.append(f"{path} {value}")
        elif isinstance(value, dict):
            for key, item in value.items():
                name = str(key)
                if name.isdigit():  # e.g. close codes: a label, not a name
                    lines.append(f'{path}{{code="{name}"}} {item}')
                else:
                    walk(f"{path}_{name}", item)

    walk(prefix, {k: v for k, v in stats.items() if k != "matches"})
    return "\n".join(lines) + "\n"


async def serve_status(
    source: StatsSource,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on ``host:port`` and answer status requests until cancelled; starts with the port."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        task_status.started(bound)
        await trio.serve_listeners(
            partial(_answer, source=source), listeners, handler_nursery=nursery
        )


async def _answer(stream: trio.SocketStream, *, source: StatsSource) -> None:
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
    try:
        with trio.move_on_after(REQUEST_TIMEOUT_S):
            request = await _read_request(stream, connection)
            if request is None:
                return
            status, content_type, body = _route(request, source)
            headers = [
                ("content-type", content_type),
                ("content-length", str(len(body))),
                ("connection", "close"),
            ]
            data = connection.send(h11.Response(status_code=status, headers=headers))
            data = (data or b"") + (connection.send(h11.Data(data=body)) or b"")
            data += connection.send(h11.EndOfMessage()) or b""
            await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
        pass
    finally:
        await stream.aclose()


async def _read_request(stream: trio.abc.Stream, connection: h11.Connection) -> h11.Request | None:
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(4096)
            connection.receive_data(bytes(data))
            if not data:
                return None
            continue
        if isinstance(event, h11.Request):
            return event
        return None


def _route(request: h11.Request, source: StatsSource) -> tuple[int, str, bytes]:
    path = request.target.decode("latin-1").split("?")[0]
    if request.method != b"GET":
        return 405, "text/plain", b"only GET\n"
    if path == "/healthz":
        return 200, "text/plain", b"ok\n"
    if path == "/stats":
        return 200, "application/json", json.dumps(to_jsonable(source()), indent=1).encode()
    if path == "/metrics":
        text = prometheus_text(to_jsonable(source()))
        return 200, "text/plain; version=0.0.4", text.encode()
    return 404, "text/plain", b"try /stats, /metrics or /healthz\n"
