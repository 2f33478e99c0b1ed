"""Run the real gateway (`orbit-gateway serve`) as a child process for end-to-end tests."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.postgres import free_port


class GatewayProcess:
    def __init__(
        self,
        config: dict[str, Any],
        workdir: Path,
        env: dict[str, str] | None = None,
        *,
        nofile: int | None = None,
        port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.nofile = nofile  # the process's file descriptor limit (soft and hard), if not inherited
        self.port = port if port is not None else free_port()
        config.setdefault("http", {})["port"] = self.port
        config["http"]["public_url"] = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "gateway.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "gateway.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(self.config_path)],
            cwd=self.workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        if self.nofile is not None:
            # Set from outside as soon as the process exists, long before it opens its sockets,
            # rather than in a preexec_fn (not safe when the test process runs threads).
            resource.prlimit(self.proc.pid, resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.base_url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
