"""`orbit-gateway serve` on the stock asyncio event loop instead of uvloop, for comparison runs
(`python -m bench.run --gateway-loop asyncio`). Same app, same uvicorn settings otherwise.

    python -m bench.serve_asyncio --config gateway.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvicorn

from gateway.config import ConfigError, load_settings
from gateway.logs import setup_logging
from gateway.runtime import create_app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"orbit-gateway: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.logging.level, settings.logging.format)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.http.host,
        port=settings.http.port,
        loop="asyncio",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    asyncio.run(server.serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
