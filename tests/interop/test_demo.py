"""`make demo` works: scripts/demo.py places a real call (SIPp carrier, echo agent, gateway), hangs it
up through the API, and downloads a playable recording, then stops everything and exits 0."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]


def test_demo_places_a_call_and_gets_a_playable_recording(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    try:
        r = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "demo.py"), "--workdir", str(workdir), "--talk-seconds", "3"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"scripts/demo.py did not finish within 120 s:\n{out[-6000:]}")
    output = r.stdout + r.stderr
    assert r.returncode == 0, output[-8000:]

    # Its progress, in order (polling may miss the short-lived first states), and the final call.
    statuses = re.findall(r"\] status\s+(\w+)", r.stdout)
    lifecycle = ["initiating", "ringing", "in_progress", "completed"]
    assert set(statuses) <= set(lifecycle) and statuses == sorted(statuses, key=lifecycle.index), statuses
    assert "in_progress" in statuses and statuses[-1] == "completed", statuses
    assert '"status": "completed"' in r.stdout
    assert '"hangup_cause": "api_hangup"' in r.stdout
    assert '"recording_status": "available"' in r.stdout

    # A recording URL, and the recording it points to plays.
    urls = re.findall(r"recording_url: (http://127\.0\.0\.1:\d+/\S+\.wav\?\S+)", r.stdout)
    assert urls, r.stdout[-4000:]
    assert "RIFF/WAVE, format PCM, 2 channels, 8000 Hz, 16-bit" in r.stdout
    duration = float(re.search(r"16-bit, ([0-9.]+) s", r.stdout).group(1))  # type: ignore[union-attr]
    assert duration > 1.0
    # Both sides are heard: the carrier talks (left) and the echo agent answers (right).
    levels = re.search(r"levels: left \(called party\) (\S+) dBFS, right \(agent\) (.+)", r.stdout)
    assert levels is not None, r.stdout[-4000:]
    assert "silent" not in levels.group(2), f"the agent's side of the recording is silent: {levels.group(0)}"
    wavs = list(workdir.glob("call_*.wav"))
    assert len(wavs) == 1 and wavs[0].read_bytes()[:4] == b"RIFF"

    # Webhooks were delivered to the demo's receiver, and everything was stopped.
    assert "call.completed" in r.stdout
    assert "orbit demo OK" in r.stdout
    assert "gateway   stopped (exit code 0)" in r.stdout
