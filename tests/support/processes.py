"""Run an example agent (or any helper script) as a real child process on a free port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.postgres import free_port

ROOT = Path(__file__).resolve().parents[2]


class ScriptProcess:
    def __init__(self, script: str, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.cmd = [sys.executable, str(ROOT / script), "--port", str(self.port), *args]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ScriptProcess:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"{self.cmd} exited: {err}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.cmd} did not listen on {self.port}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
