"""Turn the raw logs of one benchmark run into figures: latency, pacing, loss, jitter.

Inputs (all timestamps CLOCK_REALTIME nanoseconds, so they compare across processes):
  relay log    packet records of the probe calls (bench.relay.RECORD)
  agent log    calls.jsonl / arrivals.bin of bench.load_agent
  SIPp log     INV/OK/ACK/BYE lines of bench/scenarios/uas_bench.xml

Latency of one marker (a loud frame after quiet ones), per probe call:
  t3 agent sends the marker         -> t4 first loud RTP packet from the gateway  = outbound (agent -> RTP)
  t4                                -> t5 SIPp's echo of it back at the relay      = carrier echo
  t1 relay sends the echo onward    -> t2 first loud frame at the agent            = inbound (RTP -> agent)
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RELAY_DTYPE = np.dtype([("port", "<u2"), ("dir", "u1"), ("flags", "u1"), ("seq", "<u2"), ("ts", "<u4"), ("t", "<i8")])
FROM_GATEWAY, TO_GATEWAY, FROM_CARRIER = 0, 1, 2
QUIET_BEFORE_ONSET = 5
FRAME_NS = 20_000_000


def percentiles(values: Sequence[float] | np.ndarray, digits: int = 2) -> dict[str, float | int | None]:
    """count, p50, p99, p99.9, max (and min) of a sample; None figures when it is empty."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return {"count": 0, "min": None, "p50": None, "p99": None, "p99_9": None, "max": None}
    p50, p99, p999 = np.percentile(arr, [50, 99, 99.9])
    return {
        "count": int(arr.size),
        "min": round(float(arr.min()), digits),
        "p50": round(float(p50), digits),
        "p99": round(float(p99), digits),
        "p99_9": round(float(p999), digits),
        "max": round(float(arr.max()), digits),
    }


# --------------------------------------------------------------------------- inputs


@dataclass
class SippCall:
    number: str
    gw_port: int | None = None
    invite_ns: int | None = None
    ok_ns: int | None = None
    ack_ns: int | None = None
    bye_ns: int | None = None


def _ns(sec: str, usec: str) -> int:
    return int(float(sec)) * 1_000_000_000 + int(float(usec)) * 1000


def read_sipp_log(paths: Iterable[Path]) -> dict[str, SippCall]:
    """Per dialled number (without '+'), what SIPp logged about its call (the last call wins)."""
    calls: dict[str, SippCall] = {}
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) < 4:
                continue
            kind, number = parts[0], parts[1]
            try:
                if kind == "INV" and len(parts) >= 5:
                    calls[number] = SippCall(number, int(parts[2]), _ns(parts[3], parts[4]))
                elif kind in ("OK", "ACK", "BYE"):
                    call = calls.setdefault(number, SippCall(number))
                    setattr(call, f"{kind.lower()}_ns", _ns(parts[2], parts[3]))
            except ValueError:
                continue
    return calls


def max_concurrent(calls: Iterable[SippCall]) -> int:
    """Most calls up at once at the carrier (INVITE received to BYE), from SIPp's log."""
    events: list[tuple[int, int]] = []
    for c in calls:
        if c.invite_ns is None:
            continue
        events.append((c.invite_ns, 1))
        if c.bye_ns is not None:
            events.append((c.bye_ns, -1))
    level = peak = 0
    for _, step in sorted(events):
        level += step
        peak = max(peak, level)
    return peak


def read_agent_calls(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def read_arrivals(path: Path) -> dict[int, np.ndarray]:
    """Receive times of every frame of the probe calls, by call index."""
    out: dict[int, np.ndarray] = {}
    if not path.exists():
        return out
    data = path.read_bytes()
    pos = 0
    while pos + 8 <= len(data):
        index, count = struct.unpack_from("<II", data, pos)
        pos += 8
        end = pos + 8 * count
        if end > len(data):
            break
        out[index] = np.frombuffer(data, dtype="<i8", count=count, offset=pos)
        pos = end
    return out


def read_relay(path: Path) -> np.ndarray:
    if not path.exists():
        return np.zeros(0, dtype=RELAY_DTYPE)
    usable = path.stat().st_size // RELAY_DTYPE.itemsize
    return np.fromfile(path, dtype=RELAY_DTYPE, count=usable)


# --------------------------------------------------------------------------- helpers


def onsets(times: np.ndarray, loud: np.ndarray, quiet_before: int = QUIET_BEFORE_ONSET) -> np.ndarray:
    """Times of loud items that follow at least `quiet_before` quiet ones (times sorted)."""
    out = []
    quiet = quiet_before  # the very first loud item counts: the stream starts quiet
    for t, is_loud in zip(times.tolist(), loud.tolist(), strict=True):
        if is_loud:
            if quiet >= quiet_before:
                out.append(t)
            quiet = 0
        else:
            quiet += 1
    return np.asarray(out, dtype=np.int64)


def match_after(starts: np.ndarray, ends: np.ndarray, window_ns: int) -> tuple[np.ndarray, int]:
    """For each start, the first end at or after it within window: (delays in ns, unmatched)."""
    if starts.size == 0:
        return np.zeros(0, dtype=np.int64), 0
    ends = np.sort(ends)
    idx = np.searchsorted(ends, starts, side="left")
    ok = idx < ends.size
    delays = np.full(starts.size, -1, dtype=np.int64)
    delays[ok] = ends[idx[ok]] - starts[ok]
    good = (delays >= 0) & (delays < window_ns)
    return delays[good], int(starts.size - good.sum())


def _unwrap(values: np.ndarray, bits: int) -> np.ndarray:
    v = values.astype(np.int64)
    if v.size < 2:
        return v
    span = 1 << bits
    d = np.diff(v)
    d = (d + span // 2) % span - span // 2
    return np.concatenate(([v[0]], v[0] + np.cumsum(d)))


@dataclass
class FlowStats:
    grid_dev_ms: list[np.ndarray] = field(default_factory=list)
    gap_dev_ms: list[np.ndarray] = field(default_factory=list)
    expected: int = 0
    received: int = 0
    jitter_ms: list[float] = field(default_factory=list)
    jitter_max_ms: list[float] = field(default_factory=list)
    flows: int = 0

    def add(self, t: np.ndarray, ts: np.ndarray, seq: np.ndarray) -> None:
        """One flow of packets the gateway sent (kernel receive times at the relay)."""
        if t.size < 10:
            return
        order = np.argsort(t, kind="stable")
        t, ts, seq = t[order], _unwrap(ts[order], 32), _unwrap(seq[order], 16)
        self.flows += 1
        ticks = (ts - ts[0]) / 160.0
        rel_s = (t - t[0]) / 1e9
        residual_ms = (t - t[0]) / 1e6 - ticks * 20.0
        # A straight line through the residuals absorbs any offset and clock-rate difference;
        # what remains is how far each packet left from its slot on the gateway's 20 ms grid.
        slope, intercept = np.polyfit(rel_s, residual_ms, 1)
        self.grid_dev_ms.append(np.abs(residual_ms - (slope * rel_s + intercept)))
        dt = np.diff(t) / 1e6
        dticks = np.diff(ticks) * 20.0
        self.gap_dev_ms.append(np.abs(dt - dticks))
        unique = np.unique(seq)
        self.expected += int(unique[-1] - unique[0] + 1)
        self.received += int(unique.size)
        # RFC 3550 6.4.1 interarrival jitter, in ms.
        transit_d = np.abs(dt - np.diff(ts) / 8.0)
        j = 0.0
        jmax = 0.0
        for d in transit_d.tolist():
            j += (d - j) / 16.0
            jmax = max(jmax, j)
        self.jitter_ms.append(j)
        self.jitter_max_ms.append(jmax)

    def summary(self) -> dict[str, Any]:
        grid = np.concatenate(self.grid_dev_ms) if self.grid_dev_ms else np.zeros(0)
        gap = np.concatenate(self.gap_dev_ms) if self.gap_dev_ms else np.zeros(0)
        lost = max(0, self.expected - self.received)
        return {
            "flows": self.flows,
            "grid_deviation_ms": percentiles(grid, 3),
            "gap_deviation_ms": percentiles(gap, 3),
            "packets_expected": self.expected,
            "packets_lost": lost,
            "loss_ratio": round(lost / self.expected, 6) if self.expected else None,
            "jitter_ms_mean": round(float(np.mean(self.jitter_ms)), 3) if self.jitter_ms else None,
            "jitter_ms_max": round(float(np.max(self.jitter_max_ms)), 3) if self.jitter_max_ms else None,
        }


# --------------------------------------------------------------------------- per step


def analyse_window(
    *,
    probes: Sequence[str],
    window: tuple[int, int],
    relay: np.ndarray,
    sipp: dict[str, SippCall],
    agent_calls: dict[str, dict[str, Any]],
    arrivals: dict[int, np.ndarray],
    marker_period_ms: int,
) -> dict[str, Any]:
    """Latency, pacing, loss and jitter of the probe calls (dialled numbers) inside one window."""
    start, end = window
    match_ns = marker_period_ms * 1_000_000 * 8 // 10
    out_lat: list[np.ndarray] = []
    in_lat: list[np.ndarray] = []
    echo: list[np.ndarray] = []
    rtt: list[np.ndarray] = []
    unmatched = {"outbound": 0, "inbound": 0}
    markers = 0
    pacing = FlowStats()
    inbound_loss = FlowStats()
    ws_gap: list[np.ndarray] = []
    missing: list[str] = []
    for number in probes:
        key = number.lstrip("+")
        call = sipp.get(key)
        agent = agent_calls.get(number)
        if call is None or call.gw_port is None or agent is None:
            missing.append(number)
            continue
        lo = max(start, call.invite_ns or start) - 1_000_000_000
        hi = end + 2 * match_ns
        sel = relay[(relay["port"] == call.gw_port) & (relay["t"] >= lo) & (relay["t"] <= hi)]
        loud = (sel["flags"] & 1).astype(bool)
        by_dir = {d: sel["dir"] == d for d in (FROM_GATEWAY, TO_GATEWAY, FROM_CARRIER)}
        out_on = onsets(sel["t"][by_dir[FROM_GATEWAY]], loud[by_dir[FROM_GATEWAY]])
        back_on = onsets(sel["t"][by_dir[FROM_CARRIER]], loud[by_dir[FROM_CARRIER]])
        fwd_on = onsets(sel["t"][by_dir[TO_GATEWAY]], loud[by_dir[TO_GATEWAY]])
        sent = np.asarray(agent.get("markers_ns", []), dtype=np.int64)
        sent = sent[(sent >= start) & (sent < end)]
        heard = np.asarray(agent.get("onsets_ns", []), dtype=np.int64)
        markers += int(sent.size)
        d, miss = match_after(sent, out_on, match_ns)
        out_lat.append(d)
        unmatched["outbound"] += miss
        t1 = fwd_on[(fwd_on >= start) & (fwd_on < end)]
        d, miss = match_after(t1, heard, match_ns)
        in_lat.append(d)
        unmatched["inbound"] += miss
        t4 = out_on[(out_on >= start) & (out_on < end)]
        echo.append(match_after(t4, back_on, match_ns)[0])
        rtt.append(match_after(sent, heard, 2 * match_ns)[0])
        in_window = (sel["t"] >= start) & (sel["t"] < end)
        g = sel[by_dir[FROM_GATEWAY] & in_window]
        pacing.add(g["t"], g["ts"], g["seq"])
        c = sel[by_dir[FROM_CARRIER] & in_window]
        inbound_loss.add(c["t"], c["ts"], c["seq"])
        times = arrivals.get(int(agent.get("index", -1)))
        if times is not None:
            w = times[(times >= start) & (times < end)]
            if w.size > 2:
                ws_gap.append(np.abs(np.diff(w) - FRAME_NS) / 1e6)

    def ms(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) / 1e6 if parts else np.zeros(0)

    pace = pacing.summary()
    echo_side = inbound_loss.summary()
    outbound, inbound = ms(out_lat), ms(in_lat)
    return {
        "samples_ms": {"outbound_agent_to_rtp_ms": outbound.tolist(), "inbound_rtp_to_agent_ms": inbound.tolist()},
        "probe_calls": len(probes) - len(missing),
        "probe_calls_missing": len(missing),
        "markers_sent": markers,
        "markers_unmatched": unmatched,
        "outbound_agent_to_rtp_ms": percentiles(outbound),
        "inbound_rtp_to_agent_ms": percentiles(inbound),
        "carrier_echo_ms": percentiles(ms(echo), 3),
        "round_trip_ms": percentiles(ms(rtt)),
        "rtp_from_gateway": pace,
        "rtp_echo_back": {k: echo_side[k] for k in ("flows", "packets_expected", "packets_lost", "loss_ratio")},
        "agent_frame_gap_deviation_ms": percentiles(np.concatenate(ws_gap) if ws_gap else np.zeros(0), 3),
    }


def aggregate_calls(calls: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Sums and spreads of the gateway's own per-call figures (media_stats, agent_summary)."""
    statuses: dict[str, int] = {}
    causes: dict[str, int] = {}
    media_sum: dict[str, float] = {}
    media_calls = 0
    nonzero: dict[str, int] = {}
    first_audio: list[float] = []
    summary_sum: dict[str, float] = {}
    jitter: list[float] = []
    jb_delay: list[float] = []
    summed_media = ("packets_in", "packets_out", "packets_lost", "late", "dropped", "duplicates", "concealed",
                    "underruns", "resyncs", "malformed", "dropped_foreign", "send_errors", "callback_errors")
    summed_agent = ("caller_audio_ms", "caller_audio_dropped_ms", "agent_audio_ms", "agent_audio_overflow_ms",
                    "agent_audio_trimmed_ms", "protocol_violations", "reconnects")
    for call in calls:
        statuses[str(call.get("status"))] = statuses.get(str(call.get("status")), 0) + 1
        cause = str(call.get("hangup_cause"))
        causes[cause] = causes.get(cause, 0) + 1
        media = call.get("media_stats") or None
        if isinstance(media, dict):
            media_calls += 1
            for key in summed_media:
                value = media.get(key)
                if isinstance(value, int | float):
                    media_sum[key] = media_sum.get(key, 0) + value
                    if value:
                        nonzero[key] = nonzero.get(key, 0) + 1
            if isinstance(media.get("jitter_ms"), int | float):
                jitter.append(float(media["jitter_ms"]))
            if isinstance(media.get("target_delay_ms"), int | float):
                jb_delay.append(float(media["target_delay_ms"]))
        summary = call.get("agent_summary") or None
        if isinstance(summary, dict):
            value = summary.get("answer_to_first_audio_ms")
            if isinstance(value, int | float):
                first_audio.append(float(value))
            for key in summed_agent:
                v = summary.get(key)
                if isinstance(v, int | float):
                    summary_sum[key] = summary_sum.get(key, 0) + v
    return {
        "calls": len(calls),
        "statuses": statuses,
        "hangup_causes": causes,
        "media_stats_calls": media_calls,
        "media_stats_sum": media_sum,
        "media_stats_calls_nonzero": nonzero,
        "gateway_jitter_ms": percentiles(jitter, 3),
        "jitter_buffer_target_delay_ms": percentiles(jb_delay, 1),
        "agent_summary_sum": summary_sum,
        "answer_to_first_audio_ms": percentiles(first_audio),
    }


def gateway_log_summary(paths: Sequence[Path], windows: dict[str, tuple[int, int]], limit: int = 8) -> dict[str, Any]:
    """Warnings and errors the gateway logged (JSON lines): counts per phase, most frequent messages."""
    from datetime import datetime

    counts: dict[str, int] = {}
    top: dict[str, int] = {}
    per_phase: dict[str, dict[str, int]] = {name: {} for name in windows}
    lines = [line for path in paths if path.exists() for line in path.read_text(errors="replace").splitlines()]
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        level = str(entry.get("level", "")).lower()
        if level not in ("warning", "error", "critical"):
            continue
        counts[level] = counts.get(level, 0) + 1
        exc = str(entry.get("exc") or "").strip().splitlines()
        what = f"{level} {entry.get('logger')}: {str(entry.get('msg', '')).strip()[:80]}"
        if exc:
            what += f" ({exc[-1][:100]})"
        top[what] = top.get(what, 0) + 1
        try:
            ts = int(datetime.fromisoformat(str(entry["ts"]).replace("Z", "+00:00")).timestamp() * 1e9)
        except (KeyError, ValueError):
            continue
        for name, (start, end) in windows.items():
            if start <= ts < end:
                per_phase[name][level] = per_phase[name].get(level, 0) + 1
    ranked = sorted(top.items(), key=lambda kv: -kv[1])[:limit]
    return {"counts": counts, "per_phase": per_phase, "top": [{"count": v, "message": k} for k, v in ranked]}


def rss_trend(samples: Sequence[tuple[float, float]], skip_s: float = 60.0) -> dict[str, Any]:
    """Linear trend of RSS (MB) over time (s), leaving out the first `skip_s` (warm-up)."""
    pts = [(t, v) for t, v in samples if t >= skip_s]
    if len(pts) < 3:
        pts = list(samples)
    if len(pts) < 3:
        return {"samples": len(pts), "slope_mb_per_min": None, "growth_mb": None}
    t = np.asarray([p[0] for p in pts])
    v = np.asarray([p[1] for p in pts])
    slope, _ = np.polyfit(t / 60.0, v, 1)
    half = t >= (t[0] + t[-1]) / 2
    late_slope = float(np.polyfit(t[half] / 60.0, v[half], 1)[0]) if half.sum() >= 3 else None
    return {
        "samples": len(pts),
        "from_s": round(float(t[0]), 1),
        "to_s": round(float(t[-1]), 1),
        "first_mb": round(float(v[0]), 2),
        "last_mb": round(float(v[-1]), 2),
        "max_mb": round(float(v.max()), 2),
        "growth_mb": round(float(v[-1] - v[0]), 2),
        "slope_mb_per_min": round(float(slope), 3),
        "second_half_slope_mb_per_min": round(late_slope, 3) if late_slope is not None else None,
    }


def profile_top(raw: Path, limit: int = 15) -> dict[str, Any]:
    """Hot spots from py-spy's raw (collapsed stacks) output: self and inclusive sample shares."""
    if not raw.exists():
        return {}
    self_counts: dict[str, int] = {}
    incl_counts: dict[str, int] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        try:
            count = int(count_s)
        except ValueError:
            continue
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        leaf = _short(frames[-1])
        self_counts[leaf] = self_counts.get(leaf, 0) + count
        for name in {_short(f) for f in frames}:
            incl_counts[name] = incl_counts.get(name, 0) + count
    if total == 0:
        return {"samples": 0}

    def top(counts: dict[str, int]) -> list[dict[str, Any]]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
        return [{"frame": k, "share": round(v / total, 4)} for k, v in ranked]

    return {"samples": total, "self": top(self_counts), "inclusive": top(incl_counts)}


def _short(frame: str) -> str:
    """'tick (media/session.py:200)' -> 'tick (media/session.py)': lines split one function apart."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
