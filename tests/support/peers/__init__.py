"""Real protocol peers for the interop tests: SIPp, Kamailio, baresip, moto (S3).

Each peer module starts a real program on 127.0.0.1, waits until it is reachable and
always stops it again. This package holds the small pieces they share: free ports,
"is this port bound yet" checks, binary lookup and process shutdown.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"

REPO_ROOT = Path(__file__).resolve().parents[3]
SCENARIO_DIR = REPO_ROOT / "tests" / "interop" / "scenarios"
KAMAILIO_DIR = REPO_ROOT / "tests" / "interop" / "kamailio"


KEEP_DIRS_ENV = "ORBIT_KEEP_PEER_DIRS"

_temp_dirs: list[Path] = []


class PeerError(RuntimeError):
    """A peer program could not be started or misbehaved."""


def make_workdir(prefix: str) -> Path:
    """A private temporary directory for one peer's files (config, logs, traces).

    It stays while the test process runs, so logs can be read after a peer stopped, and
    is removed when the process exits, unless ORBIT_KEEP_PEER_DIRS=1 is set.
    """
    path = Path(tempfile.mkdtemp(prefix=f"orbit-{prefix}-"))
    _temp_dirs.append(path)
    return path


@atexit.register
def _remove_workdirs() -> None:
    if os.environ.get(KEEP_DIRS_ENV) == "1":
        return
    for path in _temp_dirs:
        shutil.rmtree(path, ignore_errors=True)


def require_binary(name: str, package: str | None = None) -> str:
    """Absolute path of an executable, or a failure that says how to install it."""
    found = shutil.which(name)
    if found is None:
        for extra in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
            candidate = Path(extra) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                found = str(candidate)
                break
    if found is None:
        pkg = f" (Debian package `{package}`)" if package else ""
        raise PeerError(f"`{name}` not found{pkg}: run `make test`, which installs the interop peers")
    return found


def _can_bind(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port(*, udp: bool = True, tcp: bool = True) -> int:
    """A port on 127.0.0.1 that is currently free for the requested protocols."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if not tcp else socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK, 0))
            port = int(s.getsockname()[1])
        if port > 65000:
            continue
        if (not udp or _can_bind(port, socket.SOCK_DGRAM)) and (not tcp or _can_bind(port, socket.SOCK_STREAM)):
            return port
    raise PeerError("no free port found on 127.0.0.1")


def free_udp_block(size: int, *, align: int = 2) -> int:
    """First port of `size` consecutive free UDP ports (first one a multiple of `align`)."""
    for _ in range(200):
        base = free_port(udp=True, tcp=False)
        base -= base % align
        if base < 1024 or base + size > 65535:
            continue
        if all(_can_bind(p, socket.SOCK_DGRAM) for p in range(base, base + size)):
            return base
    raise PeerError(f"no block of {size} free UDP ports found on 127.0.0.1")


def _proc_net_ports(proto: str) -> set[int]:
    """Local ports bound on this host for 'udp' or 'tcp' (tcp: listening sockets only)."""
    ports: set[int] = set()
    for name in (proto, proto + "6"):
        path = Path("/proc/net") / name
        try:
            lines = path.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4:
                continue
            local, state = fields[1], fields[3]
            if proto == "tcp" and state != "0A":
                continue
            try:
                ports.add(int(local.rsplit(":", 1)[1], 16))
            except (IndexError, ValueError):
                continue
    return ports


def port_bound(port: int, proto: str) -> bool:
    """True when something on this host has bound UDP `port` / listens on TCP `port`."""
    return port in _proc_net_ports(proto)


def wait_for_ports(
    ports: list[tuple[int, str]],
    proc: subprocess.Popen[bytes] | None,
    timeout: float,
    what: str,
    log: Path | None = None,
) -> None:
    """Wait until every (port, 'udp'|'tcp') is bound; fail early if `proc` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if all(port_bound(p, proto) for p, proto in ports):
            return
        if proc is not None and proc.poll() is not None:
            raise PeerError(f"{what} exited with code {proc.returncode} before binding {ports}{_tail(log)}")
        if time.monotonic() > deadline:
            raise PeerError(f"{what} did not bind {ports} within {timeout:.0f}s{_tail(log)}")
        time.sleep(0.02)


def _tail(log: Path | None, size: int = 3000) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace")
    return f"\n--- {log} (tail) ---\n{text[-size:]}"


def stop_process(proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, grace: float = 5.0) -> int:
    """Signal a process we started, wait, and kill it if it does not go. Returns its exit code."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return int(proc.returncode)


__all__ = [
    "KAMAILIO_DIR",
    "LOOPBACK",
    "REPO_ROOT",
    "SCENARIO_DIR",
    "PeerError",
    "free_port",
    "free_udp_block",
    "make_workdir",
    "port_bound",
    "require_binary",
    "stop_process",
    "wait_for_ports",
]
