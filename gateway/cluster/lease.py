"""This node's lease: registered at start, renewed every `renew_seconds`, marked stopped at a
graceful stop. SQLite is for one node: a second live node on the same file is refused."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from gateway.config import ClusterConfig
from gateway.metrics import GatewayMetrics
from gateway.store.calls import CallStore
from gateway.store.nodes import NodeInfo, NodeStore
from gateway.timeutil import utcnow

log = logging.getLogger("gateway.cluster")


class ClusterError(Exception):
    """This node cannot join: the message says why and what to do."""


@dataclass(frozen=True)
class NodeAddresses:
    version: str
    http_url: str | None
    sip_address: str | None


class NodeLease:
    def __init__(
        self,
        nodes: NodeStore,
        store: CallStore,
        node_id: str,
        config: ClusterConfig,
        addresses: NodeAddresses,
        metrics: GatewayMetrics,
        *,
        single_node: bool,
    ) -> None:
        self._nodes = nodes
        self._store = store
        self.node_id = node_id
        self._config = config
        self._addresses = addresses
        self._metrics = metrics
        self._single_node = single_node
        self.previous: NodeInfo | None = None

    async def open(self) -> NodeInfo | None:
        """Register this node; returns how its previous run left its row (None: first run)."""
        now = utcnow()
        self.previous = await self._nodes.get(self.node_id)
        if self._single_node:
            others = [n for n in await self._nodes.all() if n.node_id != self.node_id and n.state == "up" and not n.expired(now)]
            if others:
                raise ClusterError(
                    f"node {others[0].node_id!r} is running on this SQLite database (lease renewed "
                    f"{(now - others[0].renewed_at).total_seconds():.0f} s ago): SQLite is for one node; "
                    "run several nodes on PostgreSQL (database.url: postgresql+asyncpg://...)"
                )
        await self._register()
        return self.previous

    async def _register(self) -> None:
        await self._nodes.register(
            self.node_id,
            utcnow(),
            version=self._addresses.version,
            http_url=self._addresses.http_url,
            sip_address=self._addresses.sip_address,
            lease_seconds=self._config.lease_seconds,
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._config.renew_seconds)
            try:
                if not await self._nodes.renew(self.node_id, utcnow()):
                    # A peer found the lease run out (this node was cut off) and settled its calls.
                    log.error("this node's lease ran out and a peer took over its calls; registering again")
                    await self._register()
                await self._observe()
            except Exception as exc:  # the database may be away for a while; keep trying
                log.warning("lease not renewed", extra={"error": type(exc).__name__})

    async def _observe(self) -> None:
        nodes = await self._nodes.all()
        live = await self._store.live_by_node()
        now = utcnow()
        self._metrics.cluster_nodes(
            [(n.node_id, n.state == "up" and not n.expired(now), (now - n.renewed_at).total_seconds(), live.get(n.node_id, 0)) for n in nodes]
        )

    async def close(self) -> None:
        await self._nodes.stopped(self.node_id, utcnow())
