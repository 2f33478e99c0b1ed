"""Real websocket agent servers for bridge tests, and a fake media tick.

``AgentServer`` listens on 127.0.0.1 (websockets.serve, no compression) and
hands each accepted connection to the test as an ``AgentPeer``, which records
everything the gateway sent and lets the test speak for the agent. Peers can
echo automatically (``echo=True``): binary audio back as binary (orbit-voice),
``media`` payloads back as ``media`` (twilio). Like most agents, a peer closes
the connection (1000) when it receives ``stop`` unless ``close_on_stop=False``.

``MediaTick`` stands in for MediaSession: every ``interval`` it gives the
bridge 20 ms of caller audio and takes one frame to play.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from media.agent.endpoint import AgentEndpoint
from media.resample import FrameResamplers

ORBIT = "orbit-voice.v1"


def agent_endpoint(url: str, **kw: Any) -> AgentEndpoint:
    base: dict[str, Any] = {"id": "agt_test", "url": url, "connect_timeout_seconds": 2.0}
    base.update(kw)
    return AgentEndpoint(**base)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tone(freq: float, rate: int, ms: int, amplitude: float = 8000.0, phase_samples: int = 0) -> bytes:
    n = rate * ms // 1000
    t = (np.arange(n) + phase_samples) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude).astype("<i2").tobytes()


def dominant_hz(pcm: bytes, rate: int) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    x = x - x.mean()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


def rms(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0


@dataclass
class AgentPeer:
    """One accepted connection, seen from the agent's side."""

    ws: ServerConnection
    echo: bool = False
    close_on_stop: bool = True
    received: list[str | bytes] = field(default_factory=list)
    inbox: asyncio.Queue[str | bytes] = field(default_factory=asyncio.Queue)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None
    stop_received_at: float | None = None  # wall-clock time `stop` arrived

    @property
    def headers(self) -> Headers:
        assert self.ws.request is not None
        return self.ws.request.headers

    @property
    def subprotocol(self) -> str | None:
        return self.ws.subprotocol

    def texts(self) -> list[dict[str, Any]]:
        return [json.loads(m) for m in self.received if isinstance(m, str)]

    def audio_bytes(self) -> bytes:
        return b"".join(m for m in self.received if isinstance(m, bytes))

    async def recv(self, timeout: float = 3.0) -> str | bytes:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def recv_json(self, timeout: float = 3.0, **match: Any) -> dict[str, Any]:
        """Next text message whose fields equal ``match`` (others are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await self.recv(max(0.0, deadline - loop.time()))
            if isinstance(msg, bytes):
                continue
            obj: dict[str, Any] = json.loads(msg)
            if all(obj.get(k) == v for k, v in match.items()):
                return obj

    async def recv_audio(self, n_bytes: int, timeout: float = 3.0) -> bytes:
        """Collect binary audio (orbit-voice) until ``n_bytes`` arrived."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        out = bytearray()
        while len(out) < n_bytes:
            msg = await self.recv(max(0.0, deadline - loop.time()))
            if isinstance(msg, bytes):
                out += msg
        return bytes(out)

    async def send_json(self, obj: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(obj))

    async def send(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)

    async def wait_closed(self, timeout: float = 3.0) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    async def _auto(self, msg: str | bytes) -> None:
        if isinstance(msg, bytes):
            if self.echo:
                await self.ws.send(msg)
            return
        obj = json.loads(msg)
        if "stop" in (obj.get("type"), obj.get("event")) and self.stop_received_at is None:
            self.stop_received_at = time.time()
        if self.close_on_stop and "stop" in (obj.get("type"), obj.get("event")):
            await self.ws.close(1000)
        elif self.echo and obj.get("event") == "media":
            await self.ws.send(
                json.dumps(
                    {
                        "event": "media",
                        "streamSid": obj["streamSid"],
                        "media": {"payload": obj["media"]["payload"]},
                    }
                )
            )


class AgentServer:
    """A scripted agent: ``async with AgentServer() as server: peer = await server.accept()``."""

    def __init__(
        self,
        *,
        subprotocols: Sequence[str] | None = (ORBIT,),
        echo: bool = False,
        close_on_stop: bool = True,
        reject_status: int | None = None,
        reject_times: int | None = None,
        require_headers: dict[str, str] | None = None,
    ) -> None:
        self.subprotocols = list(subprotocols) if subprotocols is not None else None
        self.echo = echo
        self.close_on_stop = close_on_stop
        self.reject_status = reject_status
        self.reject_times = reject_times  # how many handshakes to reject; None: all
        self.rejected = 0
        self.require_headers = require_headers or {}
        self.peers: list[AgentPeer] = []
        self._accepted: asyncio.Queue[AgentPeer] = asyncio.Queue()
        self._server: Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/agent"

    async def __aenter__(self) -> AgentServer:
        self._server = await serve(
            self._handler,
            "127.0.0.1",
            0,
            subprotocols=[Subprotocol(s) for s in self.subprotocols] if self.subprotocols else None,
            compression=None,
            max_size=None,
            process_request=self._process_request,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 3.0)

    async def accept(self, timeout: float = 3.0) -> AgentPeer:
        return await asyncio.wait_for(self._accepted.get(), timeout)

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if self.reject_status is not None and (self.reject_times is None or self.rejected < self.reject_times):
            self.rejected += 1
            return conn.respond(HTTPStatus(self.reject_status), "rejected by test agent\n")
        for key, value in self.require_headers.items():
            if request.headers.get(key) != value:
                return conn.respond(HTTPStatus.UNAUTHORIZED, "bad credentials\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        peer = AgentPeer(ws, echo=self.echo, close_on_stop=self.close_on_stop)
        self.peers.append(peer)
        self._accepted.put_nowait(peer)
        try:
            async for msg in ws:
                peer.received.append(msg)
                peer.inbox.put_nowait(msg)
                await peer._auto(msg)
        except ConnectionClosed:
            pass
        finally:
            peer.close_code = ws.close_code
            peer.closed.set()


@dataclass
class SilentServer:
    port: int
    requests_read: int = 0  # connections whose handshake request arrived (and got no answer)


@contextlib.asynccontextmanager
async def silent_tcp_server() -> AsyncIterator[SilentServer]:
    """Accepts TCP connections and never answers the websocket handshake."""
    writers: list[asyncio.StreamWriter] = []
    tasks: set[asyncio.Task[Any]] = set()
    silent = SilentServer(port=0)

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        with contextlib.suppress(Exception):
            if await reader.readuntil(b"\r\n\r\n"):
                silent.requests_read += 1
            while await reader.read(65536):
                pass  # never answer; return when the client gives up

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    silent.port = int(server.sockets[0].getsockname()[1])
    try:
        yield silent
    finally:
        server.close()
        for w in writers:
            w.close()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)


class MediaTick:
    """Drives a bridge like MediaSession does: caller audio in, then one frame out, per tick."""

    def __init__(
        self,
        bridge: Any,
        caller: Callable[[int], bytes] | None = None,
        interval: float = 0.02,
        resamplers: FrameResamplers | None = None,
    ) -> None:
        self.bridge = bridge
        self.resamplers = resamplers  # run like the media clock runs them: after prepare, after tick
        self.caller = caller or (lambda i: bytes(320))
        self.interval = interval
        self.played: list[bytes | None] = []
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    def tick(self) -> bytes | None:
        if self.resamplers is not None:
            self.bridge.prefetch()
            self.resamplers.run()
        self.bridge.on_caller_audio(self.caller(self.ticks))
        frame: bytes | None = self.bridge.next_frame()
        if self.resamplers is not None:
            self.resamplers.run()
        assert frame is None or len(frame) == 320
        self.played.append(frame)
        self.ticks += 1
        return frame

    def start(self) -> MediaTick:
        async def run() -> None:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            i = 0
            while True:
                self.tick()
                i += 1
                await asyncio.sleep(max(0.0, t0 + i * self.interval - loop.time()))

        self._task = asyncio.get_running_loop().create_task(run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def audio(self) -> bytes:
        """Everything played, silence included."""
        return b"".join(f if f is not None else bytes(320) for f in self.played)
