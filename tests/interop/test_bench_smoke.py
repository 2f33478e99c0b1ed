"""The load benchmark's smoke run (`python -m bench.run --smoke`) works end to end.

It starts the real gateway (`orbit-gateway serve`), SIPp, the load agent and the RTP relay,
places 3 calls and a short burst of set-up calls, and writes its JSON. This test checks
that the harness measured something (CPU figures, latency samples, completed calls),
never what the figures are: timings on shared machines are not test material.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]


def test_bench_smoke_run_measures(tmp_path: Path) -> None:
    assert shutil.which("sipp"), "sipp not found: `make test` installs sip-tester"
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"bench exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    result = json.loads(out.read_text())
    context = proc.stdout[-4000:]

    assert result["machine"]["cores"] and result["machine"]["python"]
    (step,) = result["phases"]
    cpu = step["usage"]["cpu"]
    for name in ("gateway", "sipp", "relay", "agent", "harness"):
        assert cpu[name]["cpu_core"] is not None, (name, cpu)
        assert cpu[name]["rss_mb"], (name, cpu)
    assert step["gateway_cpu_pct_per_call"] is not None
    assert step["gateway_fds"], step

    calls = step["gateway_calls"]
    assert calls["statuses"] == {"completed": 3}, f"{calls['statuses']} {calls['hangup_causes']}\n{context}"
    assert step["established"] == 3, context

    media = step["media"]
    assert media["rtp_from_gateway"]["flows"] == 3, media
    assert media["markers_sent"] > 0, media
    assert media["outbound_agent_to_rtp_ms"]["count"] > 0, media
    assert media["inbound_rtp_to_agent_ms"]["count"] > 0, media
    assert media["rtp_from_gateway"]["grid_deviation_ms"]["count"] > 0, media
    assert calls["media_stats_calls"] == 3, calls
    # The gateways' live playout counters were read around the hold window: 3 calls played audio in it.
    window = step["playout_window"]
    assert window is not None and window["played"] > 0, step

    setup = result["setup"]
    assert setup["calls"] == 3 and setup["succeeded"] == 3, setup
    assert setup["post_to_invite_ms"]["count"] == 3, setup
    assert "targets" in result
