"""Prometheus metrics: the recording functions, and GET /metrics scraped and parsed as Prometheus would."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from gateway.api.metrics import metrics_router
from gateway.metrics import GatewayMetrics
from gateway.outcome import CallStatus
from media.stats import MediaStats

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def scrape(m: GatewayMetrics) -> tuple[httpx.Response, Samples]:
    app = FastAPI()
    app.include_router(metrics_router(m))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test") as client:
        r = await client.get("/metrics")
    return r, parse(r.text)


async def test_fresh_registry_exposes_every_metric_at_zero() -> None:
    r, s = await scrape(GatewayMetrics(process_metrics=False))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert value(s, "orbit_active_calls") == 0
    for status in ("completed", "failed", "busy", "no_answer", "cancelled"):
        assert value(s, "orbit_calls_total", status=status) == 0
    for result in ("delivered", "failed", "dead"):
        assert value(s, "orbit_webhook_deliveries_total", result=result) == 0
    for result in ("ok", "failed"):
        assert value(s, "orbit_recording_uploads_total", result=result) == 0
    for name in (
        "orbit_rtp_packet_loss_ratio",
        "orbit_rtp_jitter_ms",
        "orbit_agent_connect_seconds",
        "orbit_media_clock_lateness_ms",
    ):
        assert value(s, name + "_count") == 0
        assert value(s, name + "_bucket", le="+Inf") == 0
    for outcome in ("played", "concealed", "dropped", "late", "underrun", "inserted", "trimmed"):
        assert value(s, "orbit_playout_frames_total", outcome=outcome) == 0
    for direction in ("inbound", "outbound"):
        assert value(s, "orbit_sip_tcp_connections", direction=direction) == 0
    for reason in ("not_trunk", "source_limit", "total_limit"):
        assert value(s, "orbit_sip_tcp_connections_refused_total", reason=reason) == 0
    for reason in ("no_sip", "idle", "bad_stream"):
        assert value(s, "orbit_sip_tcp_connections_closed_total", reason=reason) == 0
    # No SIP response seen yet: no series.
    assert not [k for k in s if k[0] == "orbit_sip_responses_total"]


async def test_calls_active_gauge_and_final_status_counter() -> None:
    m = GatewayMetrics(process_metrics=False)
    m.call_started("call_a")
    m.call_started("call_b")
    m.call_started("call_b")  # the same call twice counts once
    m.call_started("call_c")
    _, s = await scrape(m)
    assert value(s, "orbit_active_calls") == 3

    m.call_ended(CallStatus.COMPLETED, "call_a")
    m.call_ended("busy", "call_b")
    m.call_ended(CallStatus.COMPLETED, "call_unknown")  # e.g. ended by crash recovery: counted, gauge unchanged
    m.call_ended("in_progress", "call_c")  # not a final status: not counted, but no longer active
    _, s = await scrape(m)
    assert value(s, "orbit_active_calls") == 0
    assert value(s, "orbit_calls_total", status="completed") == 2
    assert value(s, "orbit_calls_total", status="busy") == 1
    assert value(s, "orbit_calls_total", status="failed") == 0
    assert not [k for k in s if k[0] == "orbit_calls_total" and ("status", "in_progress") in k[1]]


async def test_sip_responses_by_code() -> None:
    m = GatewayMetrics(process_metrics=False)
    for code in (100, 180, 180, 200, 486, 503):
        m.sip_response(code)
    m.sip_response(42)  # not a SIP status code: ignored
    m.sip_response(True)  # type: ignore[arg-type]
    _, s = await scrape(m)
    assert value(s, "orbit_sip_responses_total", code="100") == 1
    assert value(s, "orbit_sip_responses_total", code="180") == 2
    assert value(s, "orbit_sip_responses_total", code="200") == 1
    assert value(s, "orbit_sip_responses_total", code="486") == 1
    assert value(s, "orbit_sip_responses_total", code="503") == 1
    codes = {dict(k[1])["code"] for k in s if k[0] == "orbit_sip_responses_total"}
    assert codes == {"100", "180", "200", "486", "503"}


async def test_sip_tcp_connections_refusals_and_closes() -> None:
    m = GatewayMetrics(process_metrics=False)
    m.sip_tcp_connections(inbound=7, outbound=2)
    for reason in ("total_limit", "total_limit", "source_limit", "not_trunk", "bogus"):
        m.sip_tcp_refused(reason)
    for reason in ("no_sip", "idle", "idle", "bad_stream", "bogus"):
        m.sip_tcp_closed(reason)
    _, s = await scrape(m)
    assert value(s, "orbit_sip_tcp_connections", direction="inbound") == 7
    assert value(s, "orbit_sip_tcp_connections", direction="outbound") == 2
    refused = {dict(k[1])["reason"]: v for k, v in s.items() if k[0] == "orbit_sip_tcp_connections_refused_total"}
    assert refused == {"total_limit": 2, "source_limit": 1, "not_trunk": 1}
    closed = {dict(k[1])["reason"]: v for k, v in s.items() if k[0] == "orbit_sip_tcp_connections_closed_total"}
    assert closed == {"no_sip": 1, "idle": 2, "bad_stream": 1}


async def test_media_stats_observe_loss_and_jitter_at_call_end() -> None:
    m = GatewayMetrics(process_metrics=False)
    # 990 received, 10 lost -> 1 % loss; jitter 12.5 ms.
    m.media_stats({"packets_in": 990, "packets_lost": 10, "jitter_ms": 12.5, "rtt_ms": None})
    # The MediaStats object itself is accepted too: no loss, 3 ms jitter.
    m.media_stats(MediaStats(packets_in=500, jitter_ms=3.0))
    # No media at all: nothing to say about loss or jitter.
    m.media_stats({"packets_in": 0, "packets_lost": 0, "jitter_ms": 0.0})
    m.media_stats(None)
    m.media_stats({"packets_in": "many", "jitter_ms": float("nan")})
    _, s = await scrape(m)
    assert value(s, "orbit_rtp_packet_loss_ratio_count") == 2
    assert value(s, "orbit_rtp_packet_loss_ratio_sum") == pytest.approx(0.01)
    assert value(s, "orbit_rtp_packet_loss_ratio_bucket", le="0.0") == 1
    assert value(s, "orbit_rtp_packet_loss_ratio_bucket", le="0.005") == 1
    assert value(s, "orbit_rtp_packet_loss_ratio_bucket", le="0.01") == 2
    assert value(s, "orbit_rtp_jitter_ms_count") == 2
    assert value(s, "orbit_rtp_jitter_ms_sum") == pytest.approx(15.5)
    assert value(s, "orbit_rtp_jitter_ms_bucket", le="5.0") == 1
    assert value(s, "orbit_rtp_jitter_ms_bucket", le="20.0") == 2


async def test_agent_webhooks_recordings_and_clock() -> None:
    m = GatewayMetrics(process_metrics=False)
    m.agent_connected(0.2)
    m.agent_connected(1.5)
    m.agent_connected(-1)  # nonsense: ignored
    for result in ("delivered", "delivered", "failed", "dead", "refused", "refused", "bogus"):
        m.webhook_delivery(result)
    for result in ("ok", "failed", "failed", "maybe"):
        m.recording_upload(result)
    for lateness in (0.3, 0.8, 3.0, 25.0, 250.0):
        m.clock_lateness(lateness)
    _, s = await scrape(m)
    assert value(s, "orbit_agent_connect_seconds_count") == 2
    assert value(s, "orbit_agent_connect_seconds_sum") == pytest.approx(1.7)
    assert value(s, "orbit_agent_connect_seconds_bucket", le="0.25") == 1
    assert value(s, "orbit_agent_connect_seconds_bucket", le="2.0") == 2
    assert value(s, "orbit_webhook_deliveries_total", result="delivered") == 2
    assert value(s, "orbit_webhook_deliveries_total", result="failed") == 1
    assert value(s, "orbit_webhook_deliveries_total", result="dead") == 1
    assert value(s, "orbit_webhook_deliveries_total", result="refused") == 2
    assert not [k for k in s if k[0] == "orbit_webhook_deliveries_total" and ("result", "bogus") in k[1]]
    assert value(s, "orbit_recording_uploads_total", result="ok") == 1
    assert value(s, "orbit_recording_uploads_total", result="failed") == 2
    assert value(s, "orbit_media_clock_lateness_ms_count") == 5
    assert value(s, "orbit_media_clock_lateness_ms_bucket", le="1.0") == 2
    assert value(s, "orbit_media_clock_lateness_ms_bucket", le="5.0") == 3
    assert value(s, "orbit_media_clock_lateness_ms_bucket", le="50.0") == 4
    assert value(s, "orbit_media_clock_lateness_ms_bucket", le="+Inf") == 5


async def test_playout_frames_are_read_from_the_source_when_scraped() -> None:
    m = GatewayMetrics(process_metrics=False)
    totals = {"played": 500, "dropped": 2}
    m.watch_playout(lambda: totals)
    _, s = await scrape(m)
    assert value(s, "orbit_playout_frames_total", outcome="played") == 500
    assert value(s, "orbit_playout_frames_total", outcome="dropped") == 2
    assert value(s, "orbit_playout_frames_total", outcome="concealed") == 0
    totals["played"] = 550  # a live call played on: the next scrape sees it
    _, s = await scrape(m)
    assert value(s, "orbit_playout_frames_total", outcome="played") == 550


async def test_a_failing_playout_source_does_not_break_the_scrape() -> None:
    m = GatewayMetrics(process_metrics=False)

    def broken() -> dict[str, int]:
        raise RuntimeError("boom")

    m.watch_playout(broken)
    m.call_started("call_a")
    r, s = await scrape(m)
    assert r.status_code == 200
    assert value(s, "orbit_active_calls") == 1
    assert value(s, "orbit_playout_frames_total", outcome="played") == 0


async def test_registries_are_separate_and_not_the_global_default() -> None:
    a = GatewayMetrics(process_metrics=False)
    b = GatewayMetrics(process_metrics=False)
    a.call_ended("failed")
    _, sa = await scrape(a)
    _, sb = await scrape(b)
    assert value(sa, "orbit_calls_total", status="failed") == 1
    assert value(sb, "orbit_calls_total", status="failed") == 0
    assert REGISTRY.get_sample_value("orbit_calls_total", {"status": "failed"}) is None


async def test_a_gateways_instance_records_and_serves_process_metrics_too() -> None:
    m = GatewayMetrics()  # as the gateway builds it: with the process collector
    m.sip_response(183)
    m.call_started("call_a")
    m.call_ended(CallStatus.NO_ANSWER, "call_a")
    m.webhook_delivery("delivered")
    m.recording_upload("ok")
    m.agent_connected(0.1)
    m.media_stats({"packets_in": 10, "packets_lost": 0, "jitter_ms": 1.0})
    m.clock_lateness(0.5)
    app = FastAPI()
    app.include_router(metrics_router(m))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test") as client:
        r = await client.get("/metrics")
    s = parse(r.text)
    assert value(s, "orbit_sip_responses_total", code="183") == 1
    assert "call_a" not in m.active_call_ids
    assert value(s, "orbit_calls_total", status="no_answer") == 1
    assert any(k[0] == "process_cpu_seconds_total" for k in s)


async def test_metrics_route_needs_no_api_key_and_is_not_in_openapi() -> None:
    app = FastAPI()
    app.include_router(metrics_router(GatewayMetrics(process_metrics=False)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test") as client:
        r = await client.get("/metrics")
        doc = (await client.get("/openapi.json")).json()
    assert r.status_code == 200
    assert "/metrics" not in doc.get("paths", {})
