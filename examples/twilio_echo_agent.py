"""Echo agent speaking Twilio Media Streams, shaped like a Pipecat TwilioFrameSerializer bot.

    .venv/bin/python examples/twilio_echo_agent.py --port 9001 [--host 127.0.0.1]

Gateway configuration::

    agents:
      - id: twilio-echo
        url: ws://127.0.0.1:9001/
        protocol: twilio
        sample_rate: 8000

It waits for ``connected`` and ``start`` (as Pipecat's parse_telephony_websocket
does), then sends every ``media`` payload back, placing a mark after each second
of echoed audio and logging the mark answers. A caller pressing ``*`` triggers a
``clear`` (what Pipecat sends on an interruption); ``#`` ends the call by closing
the websocket normally (1000), which the gateway treats as a hang-up once the
queued audio has played.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("twilio_echo_agent")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def session(ws: ServerConnection) -> None:
        try:
            first = json.loads(await ws.recv())
            second = json.loads(await ws.recv())
            if first.get("event") != "connected" or second.get("event") != "start":
                log.warning("not a Twilio media stream: %s / %s", first, second)
                await ws.close(1008)
                return
            stream_sid = second["streamSid"]
            start = second["start"]
            log.info(
                "stream %s for call %s (%s)", stream_sid, start["callSid"], start["mediaFormat"]["encoding"]
            )
            chunks = 0
            async for message in ws:
                event = json.loads(message)
                kind = event.get("event")
                if kind == "media":
                    await ws.send(
                        json.dumps(
                            {
                                "event": "media",
                                "streamSid": stream_sid,
                                "media": {"payload": event["media"]["payload"]},
                            }
                        )
                    )
                    chunks += 1
                    if chunks % 50 == 0:
                        mark = {
                            "event": "mark",
                            "streamSid": stream_sid,
                            "mark": {"name": f"echo-{chunks // 50}s"},
                        }
                        await ws.send(json.dumps(mark))
                elif kind == "mark":
                    log.info("mark %s answered", event["mark"]["name"])
                elif kind == "dtmf":
                    digit = event["dtmf"]["digit"]
                    log.info("caller pressed %s", digit)
                    if digit == "*":
                        await ws.send(json.dumps({"event": "clear", "streamSid": stream_sid}))
                    elif digit == "#":
                        await ws.close(1000)
                elif kind == "stop":
                    log.info("stop after %d chunks", chunks)
                    await ws.close(1000)
        except ConnectionClosed:
            pass

    async def run() -> None:
        async with serve(session, args.host, args.port, compression=None):
            log.info("twilio echo agent listening on ws://%s:%d/", args.host, args.port)
            await asyncio.Future()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
