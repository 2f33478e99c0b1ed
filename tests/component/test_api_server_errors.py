"""An unexpected error is a 500 in the Orbit envelope, and the client's keep-alive connection
stays usable (a real uvicorn server, one TCP connection for both requests)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import uvicorn
from fastapi import FastAPI

from gateway.api import envelope
from tests.support.postgres import free_port


@pytest.fixture
async def server() -> AsyncIterator[int]:
    app = FastAPI()
    envelope.install(app, max_body_bytes=4096)

    @app.get("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("secret internal detail")

    @app.get("/fine")
    async def fine() -> dict[str, str]:
        return {"status": "ok"}

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, loop="none")
    srv = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(srv.serve())
    while not srv.started:
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        srv.should_exit = True
        await task


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> tuple[int, dict[str, str], bytes]:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, body


async def test_a_500_keeps_the_connection(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    try:
        status, headers, body = await _exchange(reader, writer, "/boom")
        assert status == 500
        error = json.loads(body)["error"]
        assert (error["code"], error["message"]) == ("INTERNAL_ERROR", "An internal error occurred")
        assert b"secret" not in body
        assert headers.get("connection") != "close"
        status, _, body = await _exchange(reader, writer, "/fine")  # same connection
        assert (status, json.loads(body)) == (200, {"status": "ok"})
    finally:
        writer.close()


async def test_oversized_body_is_refused_before_it_is_read(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    try:
        # Announces 200 MB and sends none of it: the answer must not wait for the body.
        writer.write(b"POST /fine HTTP/1.1\r\nHost: test\r\nContent-Length: 200000000\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 413 ")
        assert b"connection: close" in head.lower()
    finally:
        writer.close()
