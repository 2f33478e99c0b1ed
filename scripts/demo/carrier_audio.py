"""What the simulated carrier 'says' in the demo: beeps as raw 8 kHz G.711 mu-law.

    python3 scripts/demo/carrier_audio.py OUT.ulaw [SECONDS]

SIPp streams the file (looped) as PCMU RTP once the call is answered: scenario
scripts/demo/carrier.xml, `<exec rtp_stream="carrier.ulaw,-1,0"/>`. Standard library
only, so the carrier's container image can build it too (docker/carrier/Dockerfile).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

RATE = 8000


def ulaw(sample: int) -> int:
    """ITU-T G.711 mu-law code of one 16-bit linear sample."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sample < 0 else sample, clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not magnitude & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def carrier_audio(seconds: float = 3.0) -> bytes:
    """A 440 Hz beep, a 660 Hz beep and pauses, every 1.5 s, at -10 dBFS."""
    out = bytearray()
    for n in range(int(seconds * RATE)):
        t = n / RATE
        phase = t % 1.5
        if phase < 0.4:
            value = 0.3 * math.sin(2 * math.pi * 440 * t)
        elif 0.6 <= phase < 1.0:
            value = 0.3 * math.sin(2 * math.pi * 660 * t)
        else:
            value = 0.0
        out.append(ulaw(round(value * 32767)))
    return bytes(out)


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    seconds = float(argv[1]) if len(argv) == 2 else 3.0
    Path(argv[0]).write_bytes(carrier_audio(seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
