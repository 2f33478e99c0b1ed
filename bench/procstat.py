"""What the kernel says about a process and the machine: CPU time, RSS, file descriptors.

Everything here reads /proc (Linux only). CPU times are in seconds, from the
utime/stime fields of /proc/<pid>/stat (all threads of the process).
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcSample:
    pid: int
    wall: float
    user: float
    system: float
    rss_bytes: int
    threads: int
    fds: int

    @property
    def cpu(self) -> float:
        return self.user + self.system


def sample(pid: int) -> ProcSample | None:
    """One reading of a process, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        statm = Path(f"/proc/{pid}/statm").read_text().split()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    threads = int(fields[17])
    return ProcSample(
        pid=pid,
        wall=time.monotonic(),
        user=utime / CLK_TCK,
        system=stime / CLK_TCK,
        rss_bytes=int(statm[1]) * PAGE,
        threads=threads,
        fds=fds,
    )


def usage(before: ProcSample | None, after: ProcSample | None) -> dict[str, float | int | None]:
    """CPU used between two readings as a share of one core (1.0 = one core busy), user and system."""
    if before is None or after is None or after.wall <= before.wall:
        return {"cpu_core": None, "user_core": None, "system_core": None, "rss_mb": None, "fds": None}
    wall = after.wall - before.wall
    return {
        "cpu_core": round((after.cpu - before.cpu) / wall, 4),
        "user_core": round((after.user - before.user) / wall, 4),
        "system_core": round((after.system - before.system) / wall, 4),
        "rss_mb": round(after.rss_bytes / 1e6, 2),
        "fds": after.fds,
        "threads": after.threads,
    }


@dataclass(frozen=True, slots=True)
class MachineSample:
    wall: float
    busy: int
    idle: int
    steal: int
    total: int


def machine_sample() -> MachineSample:
    """Aggregate CPU counters of the machine (first line of /proc/stat), in clock ticks."""
    first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    values = [int(v) for v in first[1:]]
    user, nice, system, idle, iowait, irq, softirq = values[:7]
    steal = values[7] if len(values) > 7 else 0
    total = sum(values[:8])
    return MachineSample(
        wall=time.monotonic(),
        busy=user + nice + system + irq + softirq,
        idle=idle + iowait,
        steal=steal,
        total=total,
    )


def machine_usage(before: MachineSample, after: MachineSample) -> dict[str, float | None]:
    """Share of all cores busy / stolen by the hypervisor between two readings."""
    total = after.total - before.total
    if total <= 0:
        return {"busy_share": None, "steal_share": None}
    return {
        "busy_share": round((after.busy - before.busy) / total, 4),
        "steal_share": round((after.steal - before.steal) / total, 4),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _command_output(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text or None


def machine_info(repo: Path) -> dict[str, object]:
    """The machine, interpreter and package versions a result was measured with."""
    sipp = _command_output(["sipp", "-v"])
    sipp_line = next((line.strip() for line in (sipp or "").splitlines() if "SIPp" in line), None)
    mem_kb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    dirty = _command_output(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"])
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(mem_kb / 1e6, 1) if mem_kb else None,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "packages": {
            name: _version(name)
            for name in ("uvloop", "uvicorn", "websockets", "numpy", "soxr", "fastapi", "httpx", "sqlalchemy", "aiosqlite")
        },
        "sipp": sipp_line,
        "py_spy": _command_output([str(Path(sys.executable).parent / "py-spy"), "--version"]),
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "git_commit": _command_output(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"]),
        "git_tracked_changes": bool(dirty),
    }


def as_dict(s: ProcSample | None) -> dict[str, object] | None:
    return asdict(s) if s is not None else None
