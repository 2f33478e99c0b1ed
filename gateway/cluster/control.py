"""Requests between nodes about the calls they carry: any node serves any API request.

A hangup that reaches a node which does not carry the call is written to `call_commands`
for the node that does, which is woken by a PostgreSQL notification on its own channel and
also polls, so a lost notification only delays the request. That node ends the call exactly
as for its own API (agent `stop`, grace, BYE or CANCEL, final status, webhooks once), marks
the request done and wakes the asking node, which answers its client once the final status
is stored. A call whose node is lost (lease run out) is taken over by the asking node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.calls.backend import CallBackend
from gateway.calls.ending import end_by_us
from gateway.calls.progress import CallRecorder
from gateway.cluster.takeover import Takeover
from gateway.config import ClusterConfig
from gateway.logs import call_id_var
from gateway.outcome import CallStatus, HangupCause
from gateway.store.calls import CallStore
from gateway.store.commands import Command, CommandStore
from gateway.store.nodes import NodeStore
from gateway.store.notify import Notifier, channel_for
from gateway.store.records import Call
from gateway.timeutil import utcnow

log = logging.getLogger("gateway.cluster")

# While a peer ends a call, how often its status is read (a notification usually comes first).
STATUS_POLL_SECONDS = 0.1


class ControlChannel:
    def __init__(
        self,
        *,
        node_id: str,
        commands: CommandStore,
        notifier: Notifier,
        nodes: NodeStore,
        store: CallStore,
        backend: CallBackend,
        recorder: CallRecorder,
        takeover: Takeover,
        config: ClusterConfig,
        hangup_wait_seconds: float = 35.0,
    ) -> None:
        self.node_id = node_id
        self._commands = commands
        self._notifier = notifier
        self._nodes = nodes
        self._store = store
        self._backend = backend
        self._recorder = recorder
        self._takeover = takeover
        self._config = config
        self._hangup_wait = hangup_wait_seconds
        self._wake = asyncio.Event()
        self._answered = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self._notifier.listen(channel_for(self.node_id), self._on_notify)

    def _on_notify(self, payload: str) -> None:
        if payload.startswith("done:"):
            self._answered.set()
        else:
            self._wake.set()

    # --- requests addressed to this node ------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                for command in await self._commands.claim(self.node_id, utcnow()):
                    self._spawn(self._execute(command))
            except Exception as exc:
                log.warning("reading requests for this node failed", extra={"error": type(exc).__name__})
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config.command_poll_seconds):
                    await self._wake.wait()

    async def _execute(self, command: Command) -> None:
        token = call_id_var.set(command.call_id)
        try:
            cause = HangupCause(command.cause)
            log.info("hangup asked by a peer", extra={"peer": command.requested_by})
            carried = await self._recorder.wait_ended(
                command.call_id, lambda: self._backend.hangup(command.call_id, cause), self._hangup_wait
            )
            if not carried:
                call = await self._store.get(command.call_id)
                if call is not None and not call.status.terminal:
                    # Its node, but no leg here (it ended meanwhile, or this run never had it).
                    answered = call.status is CallStatus.IN_PROGRESS
                    await self._recorder.settle(call.id, end_by_us(cause, answered=answered))
            await self._commands.done(command.id, utcnow())
            await self._notifier.notify(channel_for(command.requested_by), f"done:{command.id}")
        except Exception:
            log.exception("a peer's request failed")
        finally:
            call_id_var.reset(token)

    # --- Peers: asking the node that carries a call --------------------------------------------

    async def hangup(self, call: Call, cause: HangupCause, wait_seconds: float) -> bool:
        owner = await self._nodes.get(call.node_id) if call.node_id else None
        if owner is None or owner.state != "up" or owner.expired(utcnow()):
            # Nobody carries it any more: end its leg and settle it from here.
            last_seen = owner.renewed_at if owner is not None else None
            await self._takeover.settle([call], HangupCause.NODE_LOST, last_seen)
            return True
        command_id = await self._commands.request(
            call_id=call.id, node_id=owner.node_id, kind="hangup", cause=str(cause), by=self.node_id, now=utcnow()
        )
        await self._notifier.notify(channel_for(owner.node_id), f"cmd:{command_id}")
        try:
            async with asyncio.timeout(wait_seconds):
                while True:
                    current = await self._store.get(call.id)
                    if current is None or current.status.terminal:
                        return True
                    self._answered.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(STATUS_POLL_SECONDS):
                            await self._answered.wait()
        except TimeoutError:
            log.warning("the node carrying the call did not end it in time", extra={"call_id": call.id, "node": owner.node_id})
            return True

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._notifier.close()
