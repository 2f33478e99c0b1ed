"""Starting and always stopping the benchmark's processes, and finding free loopback ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"


def _can_bind(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


class PortPicker:
    """Hands out loopback ports (and blocks of them) that are free now and not handed out before."""

    def __init__(self, low: int = 20000, high: int = 60000) -> None:
        self.low = low
        self.high = high
        self.taken: set[int] = set()
        self._next = low + (os.getpid() * 7919) % (high - low)

    def _free(self, port: int, *, tcp: bool) -> bool:
        if port in self.taken:
            return False
        if not _can_bind(port, socket.SOCK_DGRAM):
            return False
        return not tcp or _can_bind(port, socket.SOCK_STREAM)

    def block(self, size: int, *, align: int = 2, tcp: bool = False) -> int:
        """First of `size` consecutive free ports (each free for UDP, and TCP if asked)."""
        span = self.high - self.low
        for _ in range(400):
            base = self._next - self._next % align
            self._next += size + align
            if base + size > self.high:
                self._next = self.low + (self._next - self.low) % span
                continue
            if base < self.low:
                continue
            if all(self._free(p, tcp=tcp) for p in range(base, base + size)):
                self.taken.update(range(base, base + size))
                return base
        raise RuntimeError(f"no block of {size} free ports on {LOOPBACK}")

    def port(self, *, tcp: bool = False) -> int:
        return self.block(1, align=1, tcp=tcp)


def udp_bound(port: int) -> bool:
    return _bound(port, "udp")


def tcp_listening(port: int) -> bool:
    return _bound(port, "tcp")


def _bound(port: int, proto: str) -> bool:
    for name in (proto, proto + "6"):
        try:
            lines = Path("/proc/net", name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or (proto == "tcp" and fields[3] != "0A"):
                continue
            try:
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return True
            except (IndexError, ValueError):
                continue
    return False


class Proc:
    """One child process with its output in a log file; stop() is safe to call any number of times."""

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        log: Path,
        cwd: Path,
        env: dict[str, str] | None = None,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log_path = log
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=preexec,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before {what}:\n{self.tail()}")
            if ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready ({what}) within {timeout:.0f}s:\n{self.tail()}")

    def tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, grace: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(10)
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode
