"""Run SIPp (sip-tester 3.6.1) as a real SIP peer: a far end that answers, rejects,
rings or hangs up as its scenario says, or a caller in the self-checks.

Typical use::

    with SippUas("uas_busy", transport="tcp") as uas:      # bound when the block starts
        ...  # make the gateway call uas.uri
        result = uas.wait(15)
    assert result.ok, result.describe()
    assert result.received("ACK")

SIPp runs in the foreground of its own process (no -bg, so the exit code is kept), in a
private working directory that holds every trace file. Exit codes: 0 all calls passed,
1 a call failed, 97 -timeout hit before any call passed, 99 no call processed,
255 (-1) fatal error (bad scenario, unknown -set variable), 254 (-2) cannot bind.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tests.support.peers import (
    LOOPBACK,
    SCENARIO_DIR,
    PeerError,
    free_port,
    free_udp_block,
    make_workdir,
    require_binary,
    stop_process,
    wait_for_ports,
)

MESSAGE_LOG = "messages.log"
ERROR_LOG = "errors.log"
SCREEN_LOG = "screen.log"
STAT_CSV = "stats.csv"
ACTION_LOG = "actions.log"
CALLDEBUG_LOG = "calldebug.log"

EXIT_CODES = {
    0: "all calls passed",
    1: "at least one call failed",
    97: "global -timeout reached before any call passed",
    99: "no call processed",
    -1: "fatal error",
    -2: "could not bind",
}

_TRANSPORTS = {"udp": "u1", "u1": "u1", "tcp": "t1", "t1": "t1"}

Direction = Literal["sent", "received"]


def scenario_path(name: str | Path) -> Path:
    """Resolve 'uas_busy', 'uas_busy.xml', 'selfcheck/uac_busy' or a path to a scenario file."""
    p = Path(name)
    candidates = [p] if p.is_absolute() else [p, SCENARIO_DIR / p]
    for c in list(candidates):
        if c.suffix != ".xml":
            candidates.append(c.with_name(c.name + ".xml"))
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise FileNotFoundError(f"SIPp scenario {name!r} not found (looked in {SCENARIO_DIR})")


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class SipMessage:
    """One SIP message as SIPp logged it with -trace_msg."""

    direction: Direction
    transport: str
    timestamp: str
    raw: str

    @property
    def start_line(self) -> str:
        return self.raw.split("\n", 1)[0].rstrip("\r")

    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("SIP/2.0")

    @property
    def method(self) -> str | None:
        """Request method; None for responses."""
        return self.start_line.split(" ", 1)[0] if self.is_request else None

    @property
    def status(self) -> int | None:
        """Response status code; None for requests."""
        if self.is_request:
            return None
        parts = self.start_line.split(" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None

    @property
    def request_uri(self) -> str | None:
        if not self.is_request:
            return None
        parts = self.start_line.split(" ")
        return parts[1] if len(parts) > 1 else None

    @property
    def _head_and_body(self) -> tuple[str, str]:
        text = self.raw.replace("\r\n", "\n")
        head, sep, body = text.partition("\n\n")
        return head, body if sep else ""

    @property
    def body(self) -> str:
        return self._head_and_body[1]

    _COMPACT = {"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
                "c": "content-type", "f": "from", "t": "to", "v": "via", "k": "supported", "s": "subject"}

    def headers(self, name: str) -> list[str]:
        """All values of a header (compact forms understood), in order."""
        want = name.lower()
        values: list[str] = []
        for line in self._head_and_body[0].split("\n")[1:]:
            if line[:1] in (" ", "\t") and values:
                values[-1] += " " + line.strip()
                continue
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key = key.strip().lower()
            key = self._COMPACT.get(key, key)
            if key == want:
                values.append(value.strip())
        return values

    def header(self, name: str) -> str | None:
        values = self.headers(name)
        return values[0] if values else None

    @property
    def call_id(self) -> str | None:
        return self.header("Call-ID")

    @property
    def cseq_method(self) -> str | None:
        cseq = self.header("CSeq")
        if not cseq:
            return None
        parts = cseq.split()
        return parts[1] if len(parts) > 1 else None

    def matches(self, what: str | int, cseq_method: str | None = None) -> bool:
        """`what` is a method ('INVITE') or a status code (486 / '486')."""
        if isinstance(what, int) or str(what).isdigit():
            ok = self.status == int(what)
        else:
            ok = self.method == str(what).upper()
        if ok and cseq_method is not None:
            ok = self.cseq_method == cseq_method.upper()
        return ok

    def summary(self) -> str:
        arrow = "->" if self.direction == "sent" else "<-"
        what = self.method if self.is_request else f"{self.status} ({self.cseq_method})"
        return f"{arrow} {what}"


_SEPARATOR = re.compile(r"(?m)^-{47}(?: [^\n]*)?\n")
_KIND = re.compile(r"^(\w+) (?:control )?message (received \[\d+\] bytes :|sent \(\d+ bytes\):)$")


def parse_message_log(text: str) -> list[SipMessage]:
    """Parse a SIPp -trace_msg file into the messages it sent and received, in order.

    Notes SIPp adds about a message it already logged (unexpected, dead call, ignored
    retransmission) are not repeated as messages.
    """
    messages: list[SipMessage] = []
    starts = list(_SEPARATOR.finditer(text))
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        chunk = text[m.end():end]
        first, _, rest = chunk.partition("\n")
        kind = _KIND.match(first.strip())
        if not kind:
            continue
        raw = rest[1:] if rest.startswith("\n") else rest
        if raw.endswith("\n"):
            raw = raw[:-1]
        stamp = m.group(0).strip("-\n ")
        direction: Direction = "received" if kind.group(2).startswith("received") else "sent"
        messages.append(SipMessage(direction, kind.group(1), stamp, raw))
    return messages


# --------------------------------------------------------------------------- counts


@dataclass(frozen=True)
class SippStep:
    """Counters of one scenario step from SIPp's -trace_counts CSV (like its screen)."""

    index: int
    label: str
    values: dict[str, int]

    @property
    def kind(self) -> str:
        if "Recv" in self.values:
            return "recv"
        if "Sent" in self.values:
            return "send"
        if "Sessions" in self.values:
            return "pause"
        return "other"

    @property
    def messages(self) -> int:
        return self.values.get("Recv", self.values.get("Sent", 0))

    @property
    def retrans(self) -> int:
        return self.values.get("Retrans", 0)

    @property
    def timeouts(self) -> int:
        return self.values.get("Timeout", 0)

    @property
    def unexpected(self) -> int:
        return self.values.get("Unexp", 0)


def _last_csv_row(path: Path) -> dict[str, str]:
    rows = [r for r in csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";") if r]
    if len(rows) < 2:
        return {}
    return {k: v for k, v in zip(rows[0], rows[-1], strict=False) if k}


def parse_counts(path: Path) -> tuple[dict[str, int], list[SippStep]]:
    """Final row of a *_counts.csv: flat {'2_200_Sent': 1, ...} and per-step view."""
    flat: dict[str, int] = {}
    grouped: dict[int, tuple[str, dict[str, int]]] = {}
    for key, value in _last_csv_row(path).items():
        m = re.match(r"^(\d+)_(.+)_([A-Za-z]+)$", key)
        if not m:
            continue
        try:
            n = int(value)
        except ValueError:
            continue
        flat[key] = n
        idx = int(m.group(1))
        grouped.setdefault(idx, (m.group(2), {}))[1][m.group(3)] = n
    steps = [SippStep(i, label, vals) for i, (label, vals) in sorted(grouped.items())]
    return flat, steps


# --------------------------------------------------------------------------- result


@dataclass
class SippResult:
    exit_code: int
    messages: list[SipMessage]
    counts: dict[str, int]
    steps: list[SippStep] = field(default_factory=list)
    stats: dict[str, str] = field(default_factory=dict)
    screen: str = ""
    errors: str = ""
    stderr: str = ""
    command: list[str] = field(default_factory=list)
    workdir: Path | None = None
    stopped: bool = False
    """True when the run was ended by stop() (SIPp then exits 0 even with no call)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.stopped

    @property
    def exit_meaning(self) -> str:
        return EXIT_CODES.get(self.exit_code, "killed by a signal" if self.exit_code < 0 else "unknown")

    def sent(self, what: str | int, cseq_method: str | None = None) -> list[SipMessage]:
        return [m for m in self.messages if m.direction == "sent" and m.matches(what, cseq_method)]

    def received(self, what: str | int, cseq_method: str | None = None) -> list[SipMessage]:
        return [m for m in self.messages if m.direction == "received" and m.matches(what, cseq_method)]

    def count(self, label: str | int, kind: str | None = None) -> int:
        """Messages counted by SIPp for scenario steps with this label ('INVITE', '200')."""
        total = 0
        for step in self.steps:
            if step.label == str(label) and (kind is None or step.kind == kind):
                total += step.messages
        return total

    @property
    def successful_calls(self) -> int:
        return int(self.stats.get("SuccessfulCall(C)", "0") or 0)

    @property
    def failed_calls(self) -> int:
        return int(self.stats.get("FailedCall(C)", "0") or 0)

    def flow(self) -> list[str]:
        return [m.summary() for m in self.messages]

    def describe(self) -> str:
        """Human-readable account for assertion messages."""
        lines = [f"sipp exit code {self.exit_code} ({self.exit_meaning}){' after stop()' if self.stopped else ''}"]
        lines.append("command: " + " ".join(self.command))
        if self.workdir is not None:
            lines.append(f"workdir: {self.workdir}")
        lines.append("flow: " + ", ".join(self.flow()))
        if self.steps:
            lines.append("steps: " + "; ".join(
                f"{s.index}:{s.label} {s.kind} n={s.messages} retrans={s.retrans} "
                f"timeout={s.timeouts} unexp={s.unexpected}" for s in self.steps))
        if self.errors.strip():
            lines.append("errors:\n" + self.errors.strip()[-3000:])
        if self.stderr.strip():
            lines.append("stderr:\n" + self.stderr.strip()[-2000:])
        return "\n".join(lines)


# --------------------------------------------------------------------------- runner


class Sipp:
    """One SIPp process on 127.0.0.1, with every trace SIPp can write switched on.

    scenario: name/path of an XML scenario (see scenario_path) or None with
      builtin='uas' / 'uac' for SIPp's built-in ones.
    remote: 'host:port' to call (client mode); None = server mode (waits for calls).
    transport: 'udp' or 'tcp' (SIPp -t u1 / t1).
    port / media_port: default to free ports; media_port is the first of four free UDP
      ports (SIPp binds media_port and media_port+2; RTP echo, rtp_stream and
      play_pcap_audio all send from media_port).
    calls: -m, the process ends after that many calls.
    timeout: seconds (rounded up), given as -timeout (ends a SIPp still waiting for its
      first call) and as -recv_timeout (fails a call stuck waiting for a message): -timeout
      alone only stops new calls and then waits for running ones, possibly forever.
    rtp_echo: -rtp_echo, RTP sent to media_port comes back to its sender.
    service / auth_user / auth_password: -s (user part of the Request-URI of the
      built-in keywords), -au / -ap (digest credentials for [authentication]).
    variables: -set name value for each (the scenario must declare them in <Global>).
    files: name -> bytes or source path, written into the working directory first
      (for example {'stream.ulaw': data} for uas_answer_stream.xml).
    workdir: where SIPp runs and writes its traces (default: a temporary directory kept
      until the test process ends).
    """

    def __init__(
        self,
        scenario: str | Path | None = None,
        *,
        builtin: str | None = None,
        remote: str | None = None,
        transport: str = "udp",
        port: int | None = None,
        media_port: int | None = None,
        calls: int = 1,
        timeout: float = 20.0,
        rtp_echo: bool = False,
        variables: Mapping[str, object] | None = None,
        service: str | None = None,
        auth_user: str | None = None,
        auth_password: str | None = None,
        rate: float | None = None,
        files: Mapping[str, bytes | str | Path] | None = None,
        extra_args: Sequence[str] = (),
        workdir: Path | None = None,
    ) -> None:
        if (scenario is None) == (builtin is None):
            raise ValueError("give exactly one of scenario= or builtin=")
        if transport.lower() not in _TRANSPORTS:
            raise ValueError(f"transport must be udp or tcp, not {transport!r}")
        self.binary = require_binary("sipp", "sip-tester")
        self.scenario = scenario_path(scenario) if scenario is not None else None
        self.builtin = builtin
        self.remote = remote
        self.transport = "tcp" if _TRANSPORTS[transport.lower()] == "t1" else "udp"
        self.port = port if port is not None else free_port(udp=True, tcp=True)
        self.media_port = media_port if media_port is not None else free_udp_block(4, align=2)
        self.control_port = free_port(udp=True, tcp=False)
        self.calls = calls
        self.timeout = timeout
        self.rtp_echo = rtp_echo
        self.variables = dict(variables or {})
        self.service = service
        self.auth_user = auth_user
        self.auth_password = auth_password
        self.rate = rate
        self.files = dict(files or {})
        self.extra_args = list(extra_args)
        self.workdir = Path(workdir) if workdir is not None else make_workdir("sipp")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.result: SippResult | None = None
        self._stopped = False

    # -- addresses -------------------------------------------------------------------

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def uri(self) -> str:
        """SIP URI of this peer, e.g. sip:127.0.0.1:5070;transport=tcp."""
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"sip:{LOOPBACK}:{self.port}{suffix}"

    def user_uri(self, user: str) -> str:
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"sip:{user}@{LOOPBACK}:{self.port}{suffix}"

    # -- command ---------------------------------------------------------------------

    def command(self) -> list[str]:
        cmd = [self.binary]
        cmd += ["-sf", str(self.scenario)] if self.scenario is not None else ["-sn", str(self.builtin)]
        if self.remote:
            cmd.append(self.remote)
        seconds = max(1, math.ceil(self.timeout))
        cmd += [
            "-t", _TRANSPORTS[self.transport],
            "-i", LOOPBACK,
            "-bind_local",
            "-p", str(self.port),
            "-mi", LOOPBACK,
            "-mp", str(self.media_port),
            "-ci", LOOPBACK,
            "-cp", str(self.control_port),
            "-m", str(self.calls),
            "-timeout", f"{seconds}s",
            "-recv_timeout", f"{seconds}s",
            "-nostdin",
            "-trace_msg", "-message_file", MESSAGE_LOG,
            "-trace_err", "-error_file", ERROR_LOG,
            "-trace_screen", "-screen_file", SCREEN_LOG,
            "-trace_stat", "-stf", STAT_CSV, "-fd", "1",
            "-trace_counts",
            "-trace_logs", "-log_file", ACTION_LOG,
            "-trace_calldebug", "-calldebug_file", CALLDEBUG_LOG,
        ]
        if self.rate is not None:
            cmd += ["-r", str(self.rate)]
        if self.rtp_echo:
            cmd.append("-rtp_echo")
        if self.service is not None:
            cmd += ["-s", self.service]
        if self.auth_user is not None:
            cmd += ["-au", self.auth_user]
        if self.auth_password is not None:
            cmd += ["-ap", self.auth_password]
        for name, value in self.variables.items():
            cmd += ["-set", name, str(value)]
        cmd += self.extra_args
        return cmd

    # -- lifecycle -------------------------------------------------------------------

    def start(self, wait: float = 10.0) -> Sipp:
        """Start SIPp; in server mode return once its SIP port is bound."""
        if self.proc is not None:
            raise PeerError("sipp already started")
        for name, content in self.files.items():
            dest = self.workdir / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                dest.write_bytes(content)
            else:
                shutil.copyfile(content, dest)
        with (self.workdir / "stdout.log").open("wb") as out, (self.workdir / "stderr.log").open("wb") as err:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        if self.remote is None:
            proto = "tcp" if self.transport == "tcp" else "udp"
            try:
                wait_for_ports([(self.port, proto)], self.proc, wait, "sipp", self.workdir / "stderr.log")
            except BaseException:
                self.stop()
                raise
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def current_steps(self) -> list[SippStep]:
        """Per-step counters while SIPp runs (its counts CSV is rewritten every second)."""
        files = sorted(self.workdir.glob("*_counts.csv"))
        return parse_counts(files[-1])[1] if files else []

    def current_messages(self) -> list[SipMessage]:
        """Messages traced so far (SIPp may buffer the last lines until it exits)."""
        log = self.workdir / MESSAGE_LOG
        return parse_message_log(log.read_text(errors="replace")) if log.exists() else []

    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to end by itself (its -timeout bounds this) and collect the traces."""
        if self.proc is None:
            raise PeerError("sipp was not started")
        limit = timeout if timeout is not None else self.timeout + 10
        try:
            self.proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self.stop()
            assert self.result is not None
            raise TimeoutError(f"sipp still running after {limit}s\n{self.result.describe()}") from None
        return self._collect()

    def stop(self) -> SippResult | None:
        """End SIPp now if it still runs (SIGTERM, then SIGKILL) and collect the traces."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._stopped = True
            stop_process(self.proc, grace=5.0)
        return self._collect()

    def _collect(self) -> SippResult:
        if self.result is not None:
            return self.result
        assert self.proc is not None
        code = self.proc.returncode
        if code is not None and code > 127:
            code -= 256
        wd = self.workdir
        msg_log = wd / MESSAGE_LOG
        messages = parse_message_log(msg_log.read_text(errors="replace")) if msg_log.exists() else []
        counts: dict[str, int] = {}
        steps: list[SippStep] = []
        count_files = sorted(wd.glob("*_counts.csv"))
        if count_files:
            counts, steps = parse_counts(count_files[-1])
        stat_file = wd / STAT_CSV
        stats = _last_csv_row(stat_file) if stat_file.exists() else {}

        def read(name: str) -> str:
            p = wd / name
            return p.read_text(errors="replace") if p.exists() else ""

        result = SippResult(
            exit_code=int(code if code is not None else -9),
            messages=messages,
            counts=counts,
            steps=steps,
            stats=stats,
            screen=read(SCREEN_LOG),
            errors=read(ERROR_LOG),
            stderr=read("stderr.log"),
            command=self.command(),
            workdir=wd,
            stopped=self._stopped,
        )
        self.result = result
        return result

    def __enter__(self) -> Sipp:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SippUas(Sipp):
    """SIPp waiting for calls: a far end (trunk / callee). Default: built-in 'uas'.

    The built-in uas does not copy Record-Route: behind a proxy use a scenario file.
    """

    def __init__(self, scenario: str | Path | None = None, **kwargs: object) -> None:
        if scenario is None and "builtin" not in kwargs:
            kwargs["builtin"] = "uas"
        if kwargs.get("remote") is not None:
            raise ValueError("SippUas waits for calls: no remote")
        super().__init__(scenario, **kwargs)  # type: ignore[arg-type]


class SippUac(Sipp):
    """SIPp placing calls to `remote` ('host:port'). Default: built-in 'uac'."""

    def __init__(self, scenario: str | Path | None = None, *, remote: str, **kwargs: object) -> None:
        if scenario is None and "builtin" not in kwargs:
            kwargs["builtin"] = "uac"
        super().__init__(scenario, remote=remote, **kwargs)  # type: ignore[arg-type]


__all__ = [
    "EXIT_CODES",
    "SipMessage",
    "Sipp",
    "SippResult",
    "SippStep",
    "SippUac",
    "SippUas",
    "parse_counts",
    "parse_message_log",
    "scenario_path",
]
