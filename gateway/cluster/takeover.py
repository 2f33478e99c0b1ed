"""Settling the calls of a node that is gone: this node's previous run (`gateway_restart`) or a
peer whose lease ran out (`node_lost`).

Their media and agents died with that process, but the carrier may still hold each call up
(and bill it): its leg is first ended on the wire from what was stored (BYE, or CANCEL while
it rang; `gateway.sip.recovery`), then the call ends `failed`, which queues its final webhook
once (the status change is conditional). Its `ended_at` is the last moment the node was known
to carry it: its last lease renewal, not the moment it was noticed.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from gateway.calls.backend import CallBackend
from gateway.calls.ending import end_by_us
from gateway.calls.progress import CallRecorder
from gateway.config import ClusterConfig
from gateway.logs import call_id_var
from gateway.outcome import CallStatus, HangupCause
from gateway.recordings import RecordingUploader
from gateway.store.calls import CallStore
from gateway.store.nodes import NodeStore
from gateway.store.records import Call
from gateway.timeutil import utcnow

log = logging.getLogger("gateway.cluster")


class Takeover:
    def __init__(
        self,
        *,
        node_id: str,
        nodes: NodeStore,
        store: CallStore,
        recorder: CallRecorder,
        backend: CallBackend,
        recordings: RecordingUploader,
        config: ClusterConfig,
    ) -> None:
        self.node_id = node_id
        self._nodes = nodes
        self._store = store
        self._recorder = recorder
        self._backend = backend
        self._recordings = recordings
        self._config = config

    async def settle(self, calls: list[Call], cause: HangupCause, last_seen: datetime | None) -> int:
        """End each call's carrier leg, then settle it `failed` with `cause`. Returns how many
        this node settled (a call another node settled meanwhile is left as it is)."""
        results = await asyncio.gather(*(self._settle_one(c, cause, last_seen) for c in calls))
        if any(results):
            await self._recordings.resume()  # their recordings can be finished and uploaded now
        return sum(results)

    async def _settle_one(self, call: Call, cause: HangupCause, last_seen: datetime | None) -> bool:
        token = call_id_var.set(call.id)
        try:
            if call.sip_leg is not None:
                try:
                    await self._backend.release(call)
                except Exception as exc:
                    log.warning("could not end the carrier leg", extra={"error": f"{type(exc).__name__}: {exc}"})
            outcome = end_by_us(cause, answered=call.status is CallStatus.IN_PROGRESS)
            settled = await self._recorder.settle(call.id, outcome, ended_at=last_carried(call, last_seen), sip_leg=None)
            if settled:
                log.warning("call of a node that is gone settled", extra={"node": call.node_id, "hangup_cause": str(cause)})
            return settled
        finally:
            call_id_var.reset(token)

    async def reap_once(self) -> int:
        """Take over every peer whose lease ran out (exactly one node wins each)."""
        settled = 0
        now = utcnow()
        for node in await self._nodes.all():
            if node.node_id == self.node_id or not node.expired(now):
                continue
            if not await self._nodes.claim_lost(node, self.node_id, now):
                continue  # another node took it, or it renewed just now
            calls = await self._store.active(node.node_id, include_unowned=False)
            log.warning("node lost: taking over its calls", extra={"node": node.node_id, "calls": len(calls)})
            settled += await self.settle(calls, HangupCause.NODE_LOST, node.renewed_at)
        return settled

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._config.renew_seconds)
            try:
                await self.reap_once()
            except Exception:
                log.exception("looking for lost nodes failed")


def last_carried(call: Call, last_seen: datetime | None) -> datetime:
    """When a call of a node that is gone is known to have last been up: the node's last
    renewal, or the call's own latest moment if that came after it (never in the future)."""
    now = utcnow()
    if last_seen is None:
        return now
    stamps = [t for t in (call.created_at, call.ringing_at, call.answered_at) if t is not None]
    return min(now, max([last_seen, *stamps]))
