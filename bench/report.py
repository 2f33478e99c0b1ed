"""Render a benchmark result as text and Markdown tables (for BENCHMARKS.md).

    .venv/bin/python -m bench.report bench/results/<timestamp>.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _f(value: Any, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def _pct(p: dict[str, Any] | None, digits: int = 1) -> str:
    if not p or not p.get("count"):
        return "-"
    return f"{_f(p.get('p50'), digits)} / {_f(p.get('p99'), digits)} / {_f(p.get('p99_9'), digits)}"


def _share(p: dict[str, Any]) -> str:
    v = p.get("share_over_baseline_plus_10ms")
    return "-" if v is None else f"{v * 100:.1f}%"


def _cpu(usage: dict[str, Any], name: str) -> str:
    c = usage.get("cpu", {}).get(name) or {}
    if c.get("cpu_core") is None:
        return "-"
    return f"{c['cpu_core'] * 100:.0f}% ({c['user_core'] * 100:.0f}u+{c['system_core'] * 100:.0f}s)"


def machine_lines(result: dict[str, Any]) -> list[str]:
    m = result.get("machine", {})
    pk = m.get("packages", {})
    versions = ", ".join(f"{k} {v}" for k, v in pk.items() if v)
    return [
        f"- Measured {result.get('started_at')} on {m.get('cores')} cores, {m.get('cpu_model')}, "
        f"{m.get('memory_gb')} GB, Linux {m.get('kernel')}, Python {m.get('python')}; {m.get('sipp')}",
        f"- Packages: {versions}",
        f"- Gateway commit {m.get('git_commit')}{' with uncommitted changes' if m.get('git_tracked_changes') else ''}; "
        f"run took {result.get('duration_s')} s",
    ]


def step_table(result: dict[str, Any]) -> list[str]:
    rows = [
        "| phase | calls up | gateway CPU (user+sys) | CPU/call | RSS MB (per call KB) | fds | SIPp | relay | agent | harness | other processes | machine busy (steal) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in result.get("phases", []):
        u = p["usage"]
        mach = u.get("machine", {})
        busy = mach.get("busy_share")
        steal = mach.get("steal_share")
        rows.append(
            f"| {p['name']} | {p['established']}/{p['calls']} | {_cpu(u, 'gateway')} | "
            f"{_f(p.get('gateway_cpu_pct_per_call'), 3, '%')} | {_f(p.get('gateway_rss_mb'))} "
            f"({_f(p.get('gateway_rss_per_call_kb'), 0)}) | {_f(p.get('gateway_fds'))} | {_cpu(u, 'sipp')} | "
            f"{_cpu(u, 'relay')} | {_cpu(u, 'agent')} | {_cpu(u, 'harness')} | "
            f"{_f(u['other_processes_core'] * 100 if u.get('other_processes_core') is not None else None, 0, '%')} | "
            f"{_f(busy * 100 if busy is not None else None, 0, '%')} ({_f(steal * 100 if steal is not None else None, 1, '%')}) |"
        )
    return rows


def latency_table(result: dict[str, Any]) -> list[str]:
    rows = [
        "| phase | markers | agent -> RTP ms p50/p99/p99.9 | RTP -> agent ms p50/p99/p99.9 | p99 over baseline out / in | > baseline+10 ms out / in | SIPp echo ms p50/p99 | pacing grid dev ms p50/p99/max | gap dev p99/max | RTP loss | jitter ms mean/max | agent frame gap dev p99/max |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in result.get("phases", []):
        m = p.get("media", {})
        out = m.get("outbound_agent_to_rtp_ms", {})
        inn = m.get("inbound_rtp_to_agent_ms", {})
        echo = m.get("carrier_echo_ms", {})
        rtp = m.get("rtp_from_gateway", {})
        grid = rtp.get("grid_deviation_ms", {})
        gap = rtp.get("gap_deviation_ms", {})
        ws = m.get("agent_frame_gap_deviation_ms", {})
        over_out = (out.get("over_baseline_p50") or {}).get("p99")
        over_in = (inn.get("over_baseline_p50") or {}).get("p99")
        loss = rtp.get("loss_ratio")
        rows.append(
            f"| {p['name']} | {m.get('markers_sent', 0)} | {_pct(out)} | {_pct(inn)} | {_f(over_out)} / {_f(over_in)} | "
            f"{_share(out)} / {_share(inn)} | "
            f"{_f(echo.get('p50'), 2)} / {_f(echo.get('p99'), 2)} | "
            f"{_f(grid.get('p50'), 2)} / {_f(grid.get('p99'), 2)} / {_f(grid.get('max'), 1)} | "
            f"{_f(gap.get('p99'), 2)} / {_f(gap.get('max'), 1)} | "
            f"{_f(loss * 100 if loss is not None else None, 3, '%')} | "
            f"{_f(rtp.get('jitter_ms_mean'), 2)} / {_f(rtp.get('jitter_ms_max'), 2)} | "
            f"{_f(ws.get('p99'), 2)} / {_f(ws.get('max'), 1)} |"
        )
    return rows


def gateway_counters_table(result: dict[str, Any]) -> list[str]:
    rows = [
        "| phase | calls read | final statuses | hold window: played / late / dropped / concealed / trimmed | whole life: jb late / dropped / concealed | jb target delay ms p50/max | caller audio dropped ms | agent audio trimmed ms | lost (gw view) | answer -> first agent audio ms p50/p99 | clock lateness p99 (<=) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in result.get("phases", []):
        c = p.get("gateway_calls", {})
        ms = c.get("media_stats_sum", {})
        ag = c.get("agent_summary_sum", {})
        fa = c.get("answer_to_first_audio_ms", {})
        jb = c.get("jitter_buffer_target_delay_ms", {})
        statuses = ", ".join(f"{k} {v}" for k, v in c.get("statuses", {}).items())
        cl = p.get("clock_lateness_ms") or {}
        media = (f"{_f(ms.get('late'))} / {_f(ms.get('dropped'))} / {_f(ms.get('concealed'))}"
                 if c.get("media_stats_calls") else "not reported")
        w = p.get("playout_window")
        window = (f"{_f(w.get('played'))} / {_f(w.get('late'))} / {_f(w.get('dropped'))} / {_f(w.get('concealed'))}"
                  f" / {_f(w.get('trimmed'))}" if w else "not measured")
        rows.append(
            f"| {p['name']} | {c.get('calls', 0)} | {statuses} | {window} | {media} | {_f(jb.get('p50'))} / {_f(jb.get('max'))} | "
            f"{_f(ag.get('caller_audio_dropped_ms'))} | {_f(ag.get('agent_audio_trimmed_ms'))} | "
            f"{_f(ms.get('packets_lost'))} | {_f(fa.get('p50'))} / {_f(fa.get('p99'))} | {_f(cl.get('p99_le'))} |"
        )
    return rows


def hangup_table(result: dict[str, Any]) -> list[str]:
    rows = [
        "| phase | calls hung up | took s | played / late / dropped / concealed | clock ticks | clock lateness p50 / p99 / p99.9 (<= ms) |",
        "|---|---|---|---|---|---|",
    ]
    for p in result.get("phases", []):
        h = p.get("hangup")
        if not h:
            continue
        w = h.get("playout") or {}
        cl = h.get("clock_lateness_ms") or {}
        rows.append(
            f"| {p['name']} | {p.get('created', 0)} | {_f(h.get('seconds'))} | "
            f"{_f(w.get('played'))} / {_f(w.get('late'))} / {_f(w.get('dropped'))} / {_f(w.get('concealed'))} | "
            f"{_f(cl.get('ticks'))} | {_f(cl.get('p50_le'))} / {_f(cl.get('p99_le'))} / {_f(cl.get('p99_9_le'))} |"
        )
    return rows


def setup_lines(result: dict[str, Any]) -> list[str]:
    s = result.get("setup")
    if not s:
        return ["(set-up test not run)"]
    u = s.get("usage_while_placing", {})
    return [
        "| calls | rate asked / INVITEs seen (max up at once) | succeeded | POST response ms p50/p99/p99.9 | POST -> INVITE ms | 200 OK -> agent start ms | 200 OK -> first caller frame at agent ms | answer -> first agent audio ms (gateway) | gateway CPU | failures |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {s['calls']} | {s['rate_target']:g}/s / {_f(s.get('invite_rate_achieved'), 2)}/s "
        f"({_f(s.get('max_concurrent_at_carrier'))}) | {s['succeeded']} "
        f"({s['success_ratio'] * 100:.2f}%) | {_pct(s.get('post_response_ms'))} | {_pct(s.get('post_to_invite_ms'))} | "
        f"{_pct(s.get('ok_to_agent_start_ms'))} | {_pct(s.get('ok_to_first_caller_frame_at_agent_ms'))} | "
        f"{_pct(s.get('gateway_calls', {}).get('answer_to_first_audio_ms'))} | {_cpu(u, 'gateway')} | "
        f"{', '.join(f'{k}: {v}' for k, v in s.get('failures', {}).items()) or 'none'} |",
    ]


def soak_lines(result: dict[str, Any]) -> list[str]:
    s = result.get("soak")
    if not s:
        return ["(soak not run)"]
    t = s.get("rss_trend", {})
    c = s.get("gateway_calls", {})
    return [
        f"- {s['calls_target']} calls for {s['minutes']:g} min, each {s['call_seconds']:g} s then replaced: "
        f"{s['calls_placed']} calls placed, statuses {c.get('statuses')}",
        f"- Gateway RSS from {_f(t.get('from_s'), 0)} s to {_f(t.get('to_s'), 0)} s: {_f(t.get('first_mb'))} -> "
        f"{_f(t.get('last_mb'))} MB (max {_f(t.get('max_mb'))}), growth {_f(t.get('growth_mb'))} MB, "
        f"trend {_f(t.get('slope_mb_per_min'), 3)} MB/min (second half {_f(t.get('second_half_slope_mb_per_min'), 3)})",
    ]


def profile_lines(result: dict[str, Any], limit: int = 8) -> list[str]:
    lines = []
    profiled = [(p["name"], p.get("profile")) for p in result.get("phases", [])]
    if result.get("setup"):
        profiled.append(("setup", result["setup"].get("profile_last_seconds_of_placing")))
    for name, prof in profiled:
        prof = prof or {}
        if not prof.get("self"):
            continue
        svg = f"flame graph `{prof['svg']}`" if prof.get("svg") else "flame graph not kept"
        lines.append(f"- {name} ({prof.get('samples')} samples over {prof.get('seconds'):g} s; {svg}), self time: "
                     + "; ".join(f"{e['frame']} {e['share'] * 100:.1f}%" for e in prof["self"][:limit]))
    return lines or ["(no profiles)"]


def log_lines(result: dict[str, Any]) -> list[str]:
    g = result.get("gateway_log") or {}
    if not g.get("counts"):
        return ["- no warnings or errors"]
    lines = [f"- totals {g['counts']}; per phase: "
             + "; ".join(f"{k} {v}" for k, v in (g.get("per_phase") or {}).items() if v)]
    lines += [f"- {e['count']} x {e['message']}" for e in g.get("top", [])]
    return lines


def targets_lines(result: dict[str, Any]) -> list[str]:
    t = result.get("targets", {})
    lines = []
    for key, value in t.items():
        if isinstance(value, dict):
            lines.append(f"- {key}: " + ", ".join(f"{k}={v}" for k, v in value.items()))
        else:
            lines.append(f"- {key}: {value}")
    return lines


def gateways_lines(result: dict[str, Any]) -> list[str]:
    n = int(result.get("options", {}).get("gateways") or 1)
    if n <= 1:
        return []
    return [f"{n} gateway processes side by side, calls dealt round-robin: gateway CPU, RSS and fds are their "
            "sums; clock lateness and profiles are the first process's.", ""]


def markdown(result: dict[str, Any]) -> str:
    parts = [
        *machine_lines(result), "",
        *gateways_lines(result),
        "Resources per step (CPU as a share of one core over the hold window):", "",
        *step_table(result), "",
        "Media timing (probe calls through the relay):", "",
        *latency_table(result), "",
        "The gateway's own counters (GET /v1/voice/calls/{id} after each call):", "",
        *gateway_counters_table(result), "",
        "Mass hang-up after each step (every call hung up through the API, 32 requests in flight), "
        "as the calls still up saw it:", "",
        *hangup_table(result), "",
        "Call set-up:", "",
        *setup_lines(result), "",
        "Soak:", "",
        *soak_lines(result), "",
        "Profiles (py-spy, gateway process):", "",
        *profile_lines(result), "",
        "Gateway log (warnings and errors):", "",
        *log_lines(result), "",
        "Targets:", "",
        *targets_lines(result),
    ]
    return "\n".join(parts) + "\n"


def summary_lines(result: dict[str, Any]) -> list[str]:
    return markdown(result).splitlines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("result", type=Path)
    args = parser.parse_args()
    print(markdown(json.loads(args.result.read_text())), end="")


if __name__ == "__main__":
    main()
