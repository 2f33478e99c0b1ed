"""Echo agent (orbit-voice v1): plays every caller frame straight back.

    .venv/bin/python examples/echo_agent.py --port 9000 [--host 127.0.0.1] [--token SECRET]

Point an agent at it in the gateway configuration::

    agents:
      - id: echo
        url: ws://127.0.0.1:9000/
        protocol: orbit-voice
        sample_rate: 16000
        headers: {Authorization: "Bearer SECRET"}   # only with --token

The caller hears themselves, delayed by the round trip. DTMF digits the caller
presses are sent back to the far end with send_dtmf. A summary with the frame
count is sent when the gateway says stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

log = logging.getLogger("echo_agent")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--token", help="require 'Authorization: Bearer TOKEN'")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    def check_auth(conn: ServerConnection, request: Request) -> Response | None:
        if args.token and request.headers.get("Authorization") != f"Bearer {args.token}":
            return conn.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token\n")
        return None

    async def session(ws: ServerConnection) -> None:
        frames = 0
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    frames += 1
                    await ws.send(message)  # echo the caller's audio
                    continue
                event = json.loads(message)
                kind = event.get("type")
                if kind == "start":
                    call = event["call"]
                    log.info(
                        "call %s from %s to %s at %d Hz (reconnect=%s)",
                        call["id"],
                        call["from"],
                        call["to"],
                        event["media"]["sample_rate"],
                        event["reconnect"],
                    )
                elif kind == "dtmf":
                    log.info("caller pressed %s", event["digit"])
                    await ws.send(json.dumps({"type": "send_dtmf", "digits": event["digit"]}))
                elif kind == "stop":
                    log.info("stop (%s) after %d frames", event["reason"], frames)
                    await ws.send(json.dumps({"type": "summary", "data": {"echoed_frames": frames}}))
                    await ws.close()
                else:
                    log.info("%s", event)
        except ConnectionClosed:
            pass

    async def run() -> None:
        async with serve(
            session,
            args.host,
            args.port,
            subprotocols=[Subprotocol("orbit-voice.v1")],
            compression=None,
            process_request=check_auth,
        ):
            log.info("echo agent listening on ws://%s:%d/", args.host, args.port)
            await asyncio.Future()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
