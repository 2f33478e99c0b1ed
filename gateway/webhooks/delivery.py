"""Webhook delivery from the durable outbox.

Each status change wrote its event and one delivery row per target URL in the same
transaction (see `CallStore`). This worker sends them: at least once, in order per
call and URL (a later event waits until the earlier one is delivered or dead), with
the retry schedule from the configuration, a lease so that several nodes never send
the same attempt at once, and the SSRF check repeated on the address actually
connected to. A target that check refuses, and an event that cannot be sent as strict
JSON, are dead at once: retrying cannot change the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from gateway.config import AccountConfig, WebhooksConfig
from gateway.metrics import GatewayMetrics
from gateway.store.commit import GroupCommit
from gateway.store.models import DeliveryRow, EventRow
from gateway.timeutil import utcnow
from gateway.webhooks.signing import sign
from gateway.webhooks.ssrf import WebhookTargetError, address_allowed, check_url_shape

log = logging.getLogger("gateway.webhooks")

USER_AGENT = "Devotel-Webhooks/1.0"
BATCH = 100

RecordingUrl = Callable[[str], Awaitable[str | None]]


class DeliveryError(Exception):
    """An attempt failed; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TargetRefused(DeliveryError):
    """The SSRF check refused the target: not an http(s) URL fit to send to, or its host
    resolves to a forbidden address. Final, not retried."""


class Unsendable(DeliveryError):
    """The event cannot be turned into a request body. Final, not retried."""


class WebhookDispatcher:
    """`wake` is set by the call store whenever events were committed (and polled for anyway
    every `poll_interval`, for what other nodes committed); `recording_url` fills the URL into
    `call.recording_ready` at delivery time, so it is never stale."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writes: GroupCommit,
        config: WebhooksConfig,
        accounts: Sequence[AccountConfig],
        *,
        metrics: GatewayMetrics,
        wake: asyncio.Event | None = None,
        recording_url: RecordingUrl | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self._sessions = sessions
        self._writes = writes
        self._config = config
        self._accounts = {a.id: a for a in accounts}
        self._metrics = metrics
        self._recording_url = recording_url
        self._poll = poll_interval
        self._wake = wake if wake is not None else asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(follow_redirects=False, timeout=config.timeout_seconds, trust_env=False)
        self._lease = timedelta(seconds=config.lease_seconds)
        self._claimed: set[int] = set()  # leased by this node, attempt not started yet
        self._stopping = False
        self.delivered = 0
        self.failed_attempts = 0
        self.dead = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish the attempts under way (their outcome is recorded, so no node sends them
        again), give back the leases of those not yet started, then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(self._config.timeout_seconds + 2):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            except Exception:
                log.exception("webhook sender stopped with an error")
        if self._claimed:
            waiting, self._claimed = self._claimed, set()
            with contextlib.suppress(Exception):
                await self._writes.execute(
                    update(DeliveryRow).where(DeliveryRow.id.in_(waiting)).values(lease_until=None)
                )
        await self._client.aclose()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                busy = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep delivering whatever one batch did
                log.exception("webhook batch failed")
                busy = 0
            if busy:
                continue
            self._wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
            # arrives together with the wake-up, and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()

    async def run_once(self) -> int:
        """Attempt every delivery that is due and first in line for its call and URL."""
        now = utcnow()
        rows = await self._claim(now)
        if not rows:
            return 0
        self._claimed.update(d.id for d, _ in rows)
        # One chain per (call, url), sent in order; chains run side by side.
        chains: dict[tuple[str, str], list[tuple[DeliveryRow, EventRow]]] = {}
        for delivery, event in rows:
            chains.setdefault((delivery.call_id, delivery.url), []).append((delivery, event))
        await asyncio.gather(*(self._send_chain(chain) for chain in chains.values()))
        return len(rows)

    async def _claim(self, now: datetime) -> list[tuple[DeliveryRow, EventRow]]:
        head = (
            select(DeliveryRow.call_id, DeliveryRow.url, func.min(DeliveryRow.seq).label("seq"))
            .where(DeliveryRow.state == "pending")
            .group_by(DeliveryRow.call_id, DeliveryRow.url)
            .subquery()
        )
        stmt = (
            select(DeliveryRow, EventRow)
            .join(EventRow, EventRow.id == DeliveryRow.event_id)
            .join(
                head,
                and_(head.c.call_id == DeliveryRow.call_id, head.c.url == DeliveryRow.url, head.c.seq == DeliveryRow.seq),
            )
            .where(
                DeliveryRow.state == "pending",
                DeliveryRow.next_attempt_at <= now,
                or_(DeliveryRow.lease_until.is_(None), DeliveryRow.lease_until < now),
            )
            .order_by(DeliveryRow.id)
            .limit(BATCH)
        )

        def claim(s: Session) -> list[tuple[DeliveryRow, EventRow]]:
            claimed: list[tuple[DeliveryRow, EventRow]] = []
            for delivery, event in s.execute(stmt).all():
                # Conditional update: only one node wins each lease.
                res = s.execute(
                    update(DeliveryRow)
                    .where(
                        DeliveryRow.id == delivery.id,
                        or_(DeliveryRow.lease_until.is_(None), DeliveryRow.lease_until < now),
                    )
                    .values(lease_until=now + self._lease)
                )
                if res.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append((delivery, event))
            return claimed

        return await self._writes.run(claim)

    async def _send_chain(self, chain: list[tuple[DeliveryRow, EventRow]]) -> None:
        for delivery, event in chain:
            if self._stopping:
                return  # its lease is given back at stop
            self._claimed.discard(delivery.id)
            await self._attempt(delivery, event)

    async def _attempt(self, delivery: DeliveryRow, event: EventRow) -> None:
        try:
            body = await self._body(event)
        except Unsendable as exc:
            await self._record(delivery, exc)
            return
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "X-Devotel-Event-Id": event.id,
            "X-Devotel-Event-Type": event.type,
            "X-Devotel-Delivery-Id": delivery.delivery_id,
        }
        secrets = self._secrets(event.account_id)
        if secrets:
            headers["X-Devotel-Signature"] = sign(secrets, int(utcnow().timestamp()), body)
        error: DeliveryError | None = None
        try:
            status = await self._post(delivery.url, body, headers)
            if not 200 <= status < 300:
                error = DeliveryError(f"HTTP {status}", status)
        except DeliveryError as exc:
            error = exc
        await self._record(delivery, error)

    async def _body(self, event: EventRow) -> bytes:
        payload: dict[str, Any] = dict(event.payload)
        if event.type == "call.recording_ready" and self._recording_url is not None:
            data = dict(payload.get("data") or {})
            data["recording_url"] = await self._recording_url(event.call_id)
            payload["data"] = data
        try:
            return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except ValueError as exc:
            # NaN or infinity in a stored payload (call metadata that arrived as non-standard
            # JSON): no receiver should get that, and every retry would fail the same way.
            raise Unsendable(f"payload cannot be serialized as JSON: {exc}") from None

    def _secrets(self, account_id: str) -> list[str]:
        account = self._accounts.get(account_id)
        if account is None:
            return []
        return [s.get_secret_value() for s in (account.webhook_secret, account.webhook_secret_previous) if s]

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            host, port = check_url_shape(url)
        except WebhookTargetError as exc:
            raise TargetRefused(f"invalid target: {exc}") from None
        target = url
        extensions: dict[str, Any] = {}
        if not self._config.allow_private_targets:
            # Resolve once, check every address, and connect to the checked one.
            # No answer is not a refusal (the name may resolve later): that stays retryable.
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise DeliveryError(f"cannot resolve {host}: {exc}") from None
            addresses = [str(i[4][0]) for i in infos]
            if not addresses:
                raise DeliveryError(f"cannot resolve {host}: no addresses")
            forbidden = [a for a in addresses if not address_allowed(a)]
            if forbidden:
                raise TargetRefused(
                    f"target refused: {host} resolves to {forbidden[0]}, a private, loopback or reserved address"
                )
            parts = urlsplit(url)
            ip = addresses[0]
            netloc = f"[{ip}]" if ":" in ip else ip
            if parts.port:
                netloc += f":{parts.port}"
            target = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
            headers = {**headers, "Host": parts.netloc.rsplit("@", 1)[-1]}
            if parts.scheme == "https":
                extensions["sni_hostname"] = host
        try:
            response = await self._client.post(target, content=body, headers=headers, extensions=extensions)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        return response.status_code

    async def _record(self, delivery: DeliveryRow, error: DeliveryError | None) -> None:
        now = utcnow()
        schedule = self._config.retry_schedule_seconds
        attempts = delivery.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "lease_until": None}
        extra = {"call_id": delivery.call_id, "seq": delivery.seq, "attempt": attempts}
        if error is None:
            values |= {"state": "delivered", "delivered_at": now, "last_status": 200, "last_error": None}
            self.delivered += 1
            self._metrics.webhook_delivery("delivered")
            log.info("webhook delivered", extra=extra)
        elif error.status == 410:
            # The receiver says this endpoint is gone: stop sending it this call's events.
            values |= {"state": "dead", "last_status": 410, "last_error": "410 Gone"}
            self.dead += 1
            self._metrics.webhook_delivery("dead")
            log.warning("webhook target gone", extra=extra)
            await self._give_up_pending(delivery, "target answered 410 Gone earlier")
        elif isinstance(error, TargetRefused):
            # Final, like 410: it is the target that is refused, not the event, so the call's
            # other pending events for this URL are given up with it rather than each repeating
            # the refusal. Events the call writes later still get one attempt each, which is
            # also the chance for a DNS answer that has changed since.
            values |= {"state": "dead", "last_status": None, "last_error": str(error)[:500]}
            self.dead += 1
            self._metrics.webhook_delivery("refused")
            log.warning("webhook target refused", extra={**extra, "error": str(error)})
            await self._give_up_pending(delivery, f"given up with an earlier event: {error}")
        elif isinstance(error, Unsendable) or attempts >= len(schedule):
            values |= {"state": "dead", "last_status": error.status, "last_error": str(error)[:500]}
            self.dead += 1
            self._metrics.webhook_delivery("dead")
            log.warning("webhook dead-lettered", extra={**extra, "error": str(error)})
        else:
            delay = schedule[attempts]
            values |= {
                "next_attempt_at": now + timedelta(seconds=delay),
                "last_status": error.status,
                "last_error": str(error)[:500],
            }
            self.failed_attempts += 1
            self._metrics.webhook_delivery("failed")
            log.info("webhook attempt failed", extra={**extra, "error": str(error), "retry_in": delay})
        await self._writes.execute(update(DeliveryRow).where(DeliveryRow.id == delivery.id).values(**values))

    async def _give_up_pending(self, delivery: DeliveryRow, reason: str) -> None:
        """Dead-letter the call's other pending deliveries to the same URL."""
        await self._writes.execute(
            update(DeliveryRow)
            .where(
                DeliveryRow.call_id == delivery.call_id,
                DeliveryRow.url == delivery.url,
                DeliveryRow.state == "pending",
                DeliveryRow.id != delivery.id,
            )
            .values(state="dead", last_error=reason[:500])
        )
