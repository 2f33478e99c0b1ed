"""Tone / WAV player agent (orbit-voice v1): shows marks, clear and hangup-after-playout.

    .venv/bin/python examples/tone_agent.py --port 9002 [--wav greeting.wav] [--hangup-after-greeting]

On ``start`` it plays a greeting (the WAV file, 16-bit mono at any rate, or
three rising tones), then a ``greeting-done`` mark. It sends all the audio at
once: the gateway queues it and paces it out. Keys the caller presses:

* a digit: a short beep whose pitch depends on the digit;
* ``*``: ``clear`` (barge-in); the gateway reports what was heard;
* ``#``: a falling "goodbye" tone, then ``hangup`` with ``after_playout``, so the
  call ends right after the goodbye has played.

With ``--hangup-after-greeting`` it hangs up (after playout) as soon as the
greeting has been queued.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import wave
from pathlib import Path

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

log = logging.getLogger("tone_agent")
CHUNK_MS = 200


def tone(freq: float, rate: int, ms: int, amplitude: float = 6000.0) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms ramps, no clicks
    return (np.sin(2 * np.pi * freq * t) * amplitude * fade).astype("<i2").tobytes()


def load_wav(path: Path, rate: int) -> bytes:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise SystemExit(f"{path}: need 16-bit mono PCM")
        src_rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    if src_rate != rate:  # simple linear interpolation is enough for a demo prompt
        n = int(len(x) * rate / src_rate)
        x = np.interp(np.arange(n) * src_rate / rate, np.arange(len(x)), x)
    return x.astype("<i2").tobytes()


def greeting(rate: int, wav: Path | None) -> bytes:
    if wav is not None:
        return load_wav(wav, rate)
    gap = bytes(rate * 2 // 10)
    return tone(523.25, rate, 300) + gap + tone(659.25, rate, 300) + gap + tone(783.99, rate, 500)


async def send_audio(ws: ServerConnection, pcm: bytes, rate: int) -> None:
    step = rate * 2 * CHUNK_MS // 1000
    for i in range(0, len(pcm), step):
        await ws.send(pcm[i : i + step])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9002)
    parser.add_argument("--wav", type=Path, help="16-bit mono WAV to play as the greeting")
    parser.add_argument("--hangup-after-greeting", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def session(ws: ServerConnection) -> None:
        rate = 16000
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    continue  # caller audio: this agent does not listen
                event = json.loads(message)
                kind = event.get("type")
                if kind == "start":
                    rate = event["media"]["sample_rate"]
                    log.info("call %s at %d Hz", event["call"]["id"], rate)
                    if not event["reconnect"]:
                        await send_audio(ws, greeting(rate, args.wav), rate)
                        await ws.send(json.dumps({"type": "mark", "name": "greeting-done"}))
                        if args.hangup_after_greeting:
                            await ws.send(json.dumps({"type": "hangup", "after_playout": True}))
                elif kind == "dtmf":
                    digit = event["digit"]
                    if digit == "*":
                        await ws.send(json.dumps({"type": "clear"}))
                    elif digit == "#":
                        await send_audio(ws, tone(660, rate, 250) + tone(440, rate, 400), rate)
                        await ws.send(json.dumps({"type": "hangup", "after_playout": True}))
                    else:
                        await send_audio(ws, tone(400 + 60 * "0123456789ABCD".find(digit), rate, 150), rate)
                elif kind == "mark":
                    log.info("mark %s %s", event["name"], event["status"])
                elif kind == "cleared":
                    log.info(
                        "cleared: caller heard %d ms, %d ms dropped", event["played_ms"], event["dropped_ms"]
                    )
                elif kind == "stop":
                    log.info("stop (%s)", event["reason"])
                    await ws.send(json.dumps({"type": "summary", "data": {"agent": "tone"}}))
                    await ws.close()
        except ConnectionClosed:
            pass

    async def run() -> None:
        async with serve(
            session, args.host, args.port, subprotocols=[Subprotocol("orbit-voice.v1")], compression=None
        ):
            log.info("tone agent listening on ws://%s:%d/", args.host, args.port)
            await asyncio.Future()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
