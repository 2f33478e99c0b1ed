"""`orbit-gateway`: run the gateway, check a configuration, hash an API key."""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import signal
import socket
import sys
from typing import Any

from gateway.config import ConfigError, Settings, load_settings

HELP = """\
Telephony gateway: places calls through SIP trunks and streams them to AI voice agents.

Configuration is one YAML file (see config/gateway.example.yaml) plus environment
overrides: GATEWAY__<SECTION>__<KEY>=value, with __ for nesting and numbers for
list items, e.g. GATEWAY__HTTP__PORT=9090 or GATEWAY__TRUNKS__0__PASSWORD=secret.
"""


def _load(path: str | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"orbit-gateway: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.logs import setup_logging
    from gateway.runtime import create_app

    settings = _load(args.config)
    setup_logging(settings.logging.level, settings.logging.format)
    host = args.host or settings.http.host
    port = args.port if args.port is not None else settings.http.port
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    # What is loaded by now lives as long as the process: move it out of the cyclic
    # collector's sight, so its full passes do not walk it while calls are up.
    gc.collect()
    gc.freeze()
    sockets = [_reuse_port_socket(host, port)] if settings.http.reuse_port else None
    DrainingServer(config, app, settings.http.drain_timeout_seconds, sockets).run()
    return 0


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket several node processes on one machine bind together: the kernel
    spreads new connections over them (SO_REUSEPORT), so one HTTP port serves every node."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class DrainingServer:
    """uvicorn, with SIGTERM meaning "drain": /readyz turns false and new calls get 503 while
    live calls finish (up to the drain timeout, then they are ended gracefully); only then
    does the server stop. SIGINT keeps uvicorn's meaning: stop now (twice: at once)."""

    def __init__(self, config: Any, app: Any, drain_seconds: float, sockets: list[socket.socket] | None = None) -> None:
        import uvicorn

        outer = self

        class _Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: Any) -> None:
                if sig == signal.SIGTERM and not outer.draining:
                    outer.draining = True
                    loop = outer.loop
                    if loop is not None:
                        loop.call_soon_threadsafe(outer.start_drain)
                        return
                super().handle_exit(sig, frame)

        self.server = _Server(config)
        self.app = app  # its lifespan builds the gateway (app.state.gateway)
        self.sockets = sockets
        self.drain_seconds = drain_seconds
        self.draining = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def start_drain(self) -> None:
        assert self.loop is not None
        self._task = self.loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            gateway = getattr(self.app.state, "gateway", None)
            if gateway is not None:
                await gateway.drain(self.drain_seconds)
        finally:
            self.server.should_exit = True

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.server.serve(sockets=self.sockets)

    def run(self) -> None:
        import uvloop

        uvloop.run(self._serve())


def cmd_check(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    print(
        f"configuration OK: {len(settings.accounts)} account(s), {len(settings.trunks)} trunk(s), "
        f"{len(settings.agents)} agent(s), database {settings.database.url.split('://', 1)[0]}"
    )
    return 0


def cmd_nodes(args: argparse.Namespace) -> int:
    """The nodes on the configured database: their leases and the live calls each carries."""
    settings = _load(args.config)
    return asyncio.run(_print_nodes(settings))


async def _print_nodes(settings: Settings) -> int:
    from gateway.store.calls import live_counts_by_node
    from gateway.store.db import create_engine, migrate, session_factory
    from gateway.store.nodes import list_nodes
    from gateway.timeutil import iso, utcnow

    engine = create_engine(settings.database.url)
    try:
        await migrate(engine)
        sessions = session_factory(engine)
        nodes = await list_nodes(sessions)
        live = await live_counts_by_node(sessions)
    finally:
        await engine.dispose()
    now = utcnow()
    rows = [("NODE", "STATE", "LEASE", "RENEWED", "STARTED", "LIVE CALLS", "VERSION", "HTTP", "SIP")]
    for n in nodes:
        state = "lost (lease ran out)" if n.expired(now) else n.state
        if n.state == "lost" and n.reaped_by:
            state = f"lost, taken over by {n.reaped_by}"
        age = (now - n.renewed_at).total_seconds()
        rows.append(
            (n.node_id, state, f"{n.lease_seconds:g} s", f"{age:.1f} s ago", iso(n.started_at) or "",
             str(live.get(n.node_id, 0)), n.version, n.http_url or "", n.sip_address or "")
        )
    if len(rows) == 1:
        print("no node has run on this database yet")
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_hash_key(args: argparse.Namespace) -> int:
    key = args.key if args.key is not None else sys.stdin.readline().rstrip("\n")
    print("sha256:" + hashlib.sha256(key.encode()).hexdigest())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orbit-gateway", description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the gateway (HTTP API, SIP user agent, media)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        help="YAML configuration file (default: built-in defaults plus GATEWAY__ environment variables)",
    )
    serve.add_argument("--host", metavar="ADDR", help="HTTP listen address (overrides http.host)")
    serve.add_argument("--port", type=int, metavar="PORT", help="HTTP listen port (overrides http.port)")
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("--config", "-c", metavar="PATH", required=True, help="YAML configuration file")
    check.set_defaults(func=cmd_check)

    nodes = sub.add_parser("nodes", help="list the gateway nodes on the configured database, their leases and live calls")
    nodes.add_argument("--config", "-c", metavar="PATH", help="YAML configuration file (its database.url)")
    nodes.set_defaults(func=cmd_nodes)

    hk = sub.add_parser("hash-key", help="print the sha256:<hex> form of an API key for the configuration")
    hk.add_argument("key", nargs="?", help="the key (read from stdin when omitted)")
    hk.set_defaults(func=cmd_hash_key)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
