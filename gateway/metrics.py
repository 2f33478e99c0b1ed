"""Prometheus metrics of one gateway process, and the `GET /metrics` route that serves them.

Everything lives in its own :class:`prometheus_client.CollectorRegistry` (never the
library's global default one), so several apps or tests in one process do not collide.
The gateway builds one :class:`GatewayMetrics` and hands it to every component that records
into it (the SIP transport, the dialer and its call legs, the webhook sender, the recording
uploader). Its methods are safe to call from any code path: they never raise and never block.

========================================  =========  ==========================================================
metric                                    type       recorded by
========================================  =========  ==========================================================
``orbit_active_calls``                    gauge      :meth:`call_started` / :meth:`call_ended` (calls not final)
``orbit_calls_total{status}``             counter    :meth:`call_ended`: one per call reaching a final status
``orbit_sip_responses_total{code}``       counter    :meth:`sip_response`: every SIP response received
``orbit_sip_tcp_connections*``            both       :meth:`sip_tcp_connections`, ``_refused``, ``_closed`` (below)
``orbit_rtp_packet_loss_ratio``           histogram  :meth:`media_stats` at call end: lost / (received + lost)
``orbit_rtp_jitter_ms``                   histogram  :meth:`media_stats` at call end: RFC 3550 interarrival jitter
``orbit_agent_connect_seconds``           histogram  :meth:`agent_connected`: websocket connect + start handshake
``orbit_webhook_deliveries_total``        counter    :meth:`webhook_delivery`: ``result`` delivered|failed|dead|refused
``orbit_recording_uploads_total``         counter    :meth:`recording_upload`: ``result`` ok|failed, per attempt
``orbit_media_clock_lateness_ms``         histogram  :meth:`clock_lateness`: how late each media tick ran
``orbit_playout_frames_total{outcome}``   counter    :meth:`watch_playout`: caller audio frames by playout outcome
``orbit_cluster_node_*{node_id}``         gauges     :meth:`cluster_nodes`: each node's lease and live calls
========================================  =========  ==========================================================

SIP over TCP: the gauge ``orbit_sip_tcp_connections{direction}`` counts open connections
(``inbound``: accepted, ``outbound``: opened by the gateway); the counters
``orbit_sip_tcp_connections_refused_total{reason}`` (``not_trunk``, ``source_limit``,
``total_limit``: inbound ones closed as soon as they were accepted, see
``gateway.sip.connections``) and ``orbit_sip_tcp_connections_closed_total{reason}``
(``no_sip``: no valid SIP message in time, ``idle``: no traffic and no call on it,
``bad_stream``: bytes that cannot be framed as SIP) count what the gateway closed.

``orbit_playout_frames_total`` is read when scraped from every call's jitter buffer (live
calls included), so a drop shows up the moment it happens: ``played`` (audio as received),
``concealed`` (a lost frame replaced by the previous one, faded), ``dropped`` (received audio
discarded to cut delay or on overflow), ``late`` (arrived after its slot was played),
``underrun`` (silence: nothing left to conceal with), ``inserted`` (a frame held back to
grow the delay), ``trimmed`` (a quiet frame skipped to shed delay no longer needed).

The process collector (``process_cpu_seconds_total``, ``process_resident_memory_bytes``,
open file descriptors...) and the Python GC collector are registered as well.

``gateway.api.metrics`` serves it as ``GET /metrics`` in the Prometheus text exposition
format. It has no API key: operators restrict it at the network level (bind the scrape to a
private interface, or filter it at the proxy/firewall).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector

from gateway.outcome import TERMINAL
from gateway.sip.connections import CLOSE_REASONS, REFUSAL_REASONS
from media.clock import LATENESS_BUCKETS_MS

__all__ = [
    "AGENT_CONNECT_BUCKETS_S",
    "CONTENT_TYPE",
    "FINAL_STATUSES",
    "JITTER_BUCKETS_MS",
    "LOSS_RATIO_BUCKETS",
    "PLAYOUT_OUTCOMES",
    "RECORDING_RESULTS",
    "WEBHOOK_RESULTS",
    "GatewayMetrics",
]

log = logging.getLogger("gateway.metrics")

FINAL_STATUSES: Final[tuple[str, ...]] = tuple(sorted(str(s) for s in TERMINAL))
WEBHOOK_RESULTS: Final[tuple[str, ...]] = ("delivered", "failed", "dead", "refused")
RECORDING_RESULTS: Final[tuple[str, ...]] = ("ok", "failed")

LOSS_RATIO_BUCKETS: Final[tuple[float, ...]] = (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
JITTER_BUCKETS_MS: Final[tuple[float, ...]] = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 100.0, 200.0, 500.0)
AGENT_CONNECT_BUCKETS_S: Final[tuple[float, ...]] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)

# What generate_latest writes for legacy-named metrics; every Prometheus version reads it.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


def _number(value: object) -> float | None:
    """A finite, non-negative float, or None for anything else (None, NaN, strings, bools)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    if math.isnan(f) or math.isinf(f) or f < 0:
        return None
    return f


PLAYOUT_OUTCOMES: Final = ("played", "concealed", "dropped", "late", "underrun", "inserted", "trimmed")
PlayoutSource = Callable[[], Mapping[str, int]]


class _PlayoutCollector:
    """``orbit_playout_frames_total``, summed from the live jitter buffers when scraped: a
    counter kept in step on every tick of every call would cost the media path."""

    _NAME = "orbit_playout_frames"
    _DOC = "Caller audio frames by playout outcome (jitter buffer), live calls included"

    def __init__(self) -> None:
        self.source: PlayoutSource | None = None

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self._NAME, self._DOC, labels=["outcome"])

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._NAME, self._DOC, labels=["outcome"])
        totals: Mapping[str, int] = {}
        if self.source is not None:
            try:
                totals = self.source()
            except Exception:  # a scrape must never fail because of one source
                log.exception("metrics: playout source failed")
        for outcome in PLAYOUT_OUTCOMES:
            family.add_metric([outcome], float(totals.get(outcome, 0)))
        yield family


class GatewayMetrics:
    """The gateway's metrics in one registry. See the module docstring for what each one means."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process_metrics: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.active_calls = Gauge(
            "orbit_active_calls",
            "Calls of this gateway process that have not reached a final status",
            registry=r,
        )
        self.calls_total = Counter(
            "orbit_calls_total",
            "Calls that reached a final status, by status",
            ["status"],
            registry=r,
        )
        self.sip_responses_total = Counter(
            "orbit_sip_responses_total",
            "SIP responses received (provisional and final), by status code",
            ["code"],
            registry=r,
        )
        self.sip_tcp_open = Gauge(
            "orbit_sip_tcp_connections",
            "Open SIP TCP connections: inbound (accepted) or outbound (opened by the gateway)",
            ["direction"],
            registry=r,
        )
        self.sip_tcp_refused_total = Counter(
            "orbit_sip_tcp_connections_refused",
            "Inbound SIP TCP connections closed as soon as they were accepted, by reason",
            ["reason"],
            registry=r,
        )
        self.sip_tcp_closed_total = Counter(
            "orbit_sip_tcp_connections_closed",
            "SIP TCP connections the gateway closed: no SIP message in time, idle, or unframeable",
            ["reason"],
            registry=r,
        )
        self.rtp_packet_loss_ratio = Histogram(
            "orbit_rtp_packet_loss_ratio",
            "Per call, at call end: RTP packets lost / (received + lost)",
            buckets=LOSS_RATIO_BUCKETS,
            registry=r,
        )
        self.rtp_jitter_ms = Histogram(
            "orbit_rtp_jitter_ms",
            "Per call, at call end: RTP interarrival jitter (RFC 3550) in milliseconds",
            buckets=JITTER_BUCKETS_MS,
            registry=r,
        )
        self.agent_connect_seconds = Histogram(
            "orbit_agent_connect_seconds",
            "Time to connect a call's agent websocket, in seconds",
            buckets=AGENT_CONNECT_BUCKETS_S,
            registry=r,
        )
        self.cluster_node_up = Gauge(
            "orbit_cluster_node_up", "1 while the node's lease is held, 0 once stopped or lost", ["node_id"], registry=r
        )
        self.cluster_node_lease_age = Gauge(
            "orbit_cluster_node_lease_age_seconds", "Seconds since the node last renewed its lease", ["node_id"], registry=r
        )
        self.cluster_node_live_calls = Gauge(
            "orbit_cluster_node_live_calls", "Calls not yet final that the node carries", ["node_id"], registry=r
        )
        self.webhook_deliveries_total = Counter(
            "orbit_webhook_deliveries_total",
            "Webhook delivery attempts: delivered, failed (will retry), dead (given up) or refused "
            "(the SSRF check refused the target; given up without sending)",
            ["result"],
            registry=r,
        )
        self.recording_uploads_total = Counter(
            "orbit_recording_uploads_total",
            "Recording upload attempts: ok or failed",
            ["result"],
            registry=r,
        )
        self.media_clock_lateness_ms = Histogram(
            "orbit_media_clock_lateness_ms",
            "How long after its deadline each 20 ms media clock tick ran, in milliseconds",
            buckets=LATENESS_BUCKETS_MS,
            registry=r,
        )
        # Known label values exist from the start (at 0), so rate() and alerts work before the first event.
        for status in FINAL_STATUSES:
            self.calls_total.labels(status=status)
        for result in WEBHOOK_RESULTS:
            self.webhook_deliveries_total.labels(result=result)
        for result in RECORDING_RESULTS:
            self.recording_uploads_total.labels(result=result)
        for direction in ("inbound", "outbound"):
            self.sip_tcp_open.labels(direction=direction)
        for reason in REFUSAL_REASONS:
            self.sip_tcp_refused_total.labels(reason=reason)
        for reason in CLOSE_REASONS:
            self.sip_tcp_closed_total.labels(reason=reason)
        self._playout = _PlayoutCollector()
        r.register(self._playout)
        if process_metrics:
            ProcessCollector(registry=r)
            GCCollector(registry=r)
        self._active: set[str] = set()

    # --- calls ------------------------------------------------------------------------------

    def call_started(self, call_id: str) -> None:
        """A call was created on this process (counted once per id)."""
        self._active.add(call_id)
        self.active_calls.set(len(self._active))

    def call_ended(self, status: object, call_id: str | None = None) -> None:
        """A call reached a final status. Non-final statuses are ignored (and logged)."""
        if call_id is not None:
            self._active.discard(call_id)
            self.active_calls.set(len(self._active))
        label = str(status)
        if label not in FINAL_STATUSES:
            log.warning("metrics: call_ended with a status that is not final", extra={"status": label})
            return
        self.calls_total.labels(status=label).inc()

    @property
    def active_call_ids(self) -> frozenset[str]:
        return frozenset(self._active)

    # --- SIP ----------------------------------------------------------------------------------

    def sip_response(self, code: int) -> None:
        """A SIP response was received (any class, 1xx to 6xx)."""
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 699:
            return
        self.sip_responses_total.labels(code=str(code)).inc()

    def sip_tcp_connections(self, inbound: int, outbound: int) -> None:
        """How many SIP TCP connections are open now."""
        self.sip_tcp_open.labels(direction="inbound").set(inbound)
        self.sip_tcp_open.labels(direction="outbound").set(outbound)

    def sip_tcp_refused(self, reason: str) -> None:
        """An inbound SIP TCP connection was closed as soon as it was accepted."""
        if reason not in REFUSAL_REASONS:
            log.warning("metrics: unknown sip tcp refusal reason", extra={"reason": reason})
            return
        self.sip_tcp_refused_total.labels(reason=reason).inc()

    def sip_tcp_closed(self, reason: str) -> None:
        """The gateway closed a SIP TCP connection it had kept until then."""
        if reason not in CLOSE_REASONS:
            log.warning("metrics: unknown sip tcp close reason", extra={"reason": reason})
            return
        self.sip_tcp_closed_total.labels(reason=reason).inc()

    # --- media --------------------------------------------------------------------------------

    def media_stats(self, stats: object) -> None:
        """A call's media counters at its end: ``MediaStats.as_dict()`` (or the MediaStats itself).

        Loss is observed only when packets were expected (received + lost > 0), jitter only
        when packets were received: a call without media says nothing about the network.
        """
        if stats is None:
            return
        if not isinstance(stats, Mapping):
            as_dict = getattr(stats, "as_dict", None)
            if not callable(as_dict):
                return
            stats = as_dict()
            if not isinstance(stats, Mapping):
                return
        received = _number(stats.get("packets_in")) or 0.0
        lost = _number(stats.get("packets_lost")) or 0.0
        if received + lost > 0:
            self.rtp_packet_loss_ratio.observe(lost / (received + lost))
        jitter = _number(stats.get("jitter_ms"))
        if received > 0 and jitter is not None:
            self.rtp_jitter_ms.observe(jitter)

    def clock_lateness(self, lateness_ms: float) -> None:
        """One media clock tick ran `lateness_ms` after its deadline."""
        value = _number(lateness_ms)
        if value is not None:
            self.media_clock_lateness_ms.observe(value)

    def watch_playout(self, source: PlayoutSource | None) -> None:
        """Serve ``orbit_playout_frames_total`` from `source`: outcome -> frames so far, a total
        that never decreases (ended calls stay counted)."""
        self._playout.source = source

    # --- agent, webhooks, recordings ------------------------------------------------------------

    def agent_connected(self, seconds: float) -> None:
        """A call's agent websocket was connected (and its start sent) after `seconds`."""
        value = _number(seconds)
        if value is not None:
            self.agent_connect_seconds.observe(value)

    def webhook_delivery(self, result: str) -> None:
        """One delivery attempt: ``delivered``, ``failed`` (a retry is scheduled), ``dead`` or
        ``refused`` (the SSRF check refused the target: dead too, counted apart)."""
        if result not in WEBHOOK_RESULTS:
            log.warning("metrics: unknown webhook result", extra={"result": result})
            return
        self.webhook_deliveries_total.labels(result=result).inc()

    def recording_upload(self, result: str) -> None:
        """One upload attempt of a recording: ``ok`` or ``failed``."""
        if result not in RECORDING_RESULTS:
            log.warning("metrics: unknown recording upload result", extra={"result": result})
            return
        self.recording_uploads_total.labels(result=result).inc()

    # --- cluster --------------------------------------------------------------------------------

    def cluster_nodes(self, nodes: list[tuple[str, bool, float, int]]) -> None:
        """Every node on the database as this node last read it: (node_id, lease held, seconds
        since its last renewal, live calls it carries)."""
        for gauge in (self.cluster_node_up, self.cluster_node_lease_age, self.cluster_node_live_calls):
            gauge.clear()
        for node_id, up, age, live in nodes:
            self.cluster_node_up.labels(node_id=node_id).set(1 if up else 0)
            self.cluster_node_lease_age.labels(node_id=node_id).set(max(0.0, age))
            self.cluster_node_live_calls.labels(node_id=node_id).set(live)

    # --- exposition ---------------------------------------------------------------------------

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format (version 0.0.4)."""
        return generate_latest(self.registry)
