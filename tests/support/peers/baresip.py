"""baresip (1.0.0) as a real SIP phone: auto-answers, talks (plays a WAV) and records
what it hears, with a real G.711 codec stack.

    with Baresip(tmp_path / "phone") as phone:       # answers sip:test@127.0.0.1:PORT
        ...  # the gateway calls phone.uri; the call ends
        phone.wait_event("CALL_CLOSED")
    heard = phone.recording("dec")                   # far-end audio, decoded by baresip

Recordings (module sndfile, written into snd_path = <workdir>/recordings):
  dump-YYYY-MM-DD-HH-MM-SS-dec.wav  audio baresip received and decoded (the far end)
  dump-YYYY-MM-DD-HH-MM-SS-enc.wav  audio baresip encoded and sent (its source WAV)
both mono 16-bit PCM at the codec rate (8000 Hz for PCMU/PCMA), named after the local
time the call's audio started; a WAV is complete once the call is over.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.peers import (
    LOOPBACK,
    PeerError,
    _can_bind,
    free_port,
    free_udp_block,
    make_workdir,
    require_binary,
    stop_process,
    wait_for_ports,
)
from tests.support.peers.audio import tone, write_wav

MODULE_DIRS = ("/usr/lib/baresip/modules", "/usr/lib/x86_64-linux-gnu/baresip/modules", "/usr/local/lib/baresip/modules")


def _module_dir() -> str:
    for d in MODULE_DIRS:
        if (Path(d) / "g711.so").is_file():
            return d
    raise PeerError("baresip modules (g711.so) not found: run `make test`, which installs the interop peers")


def wav_complete(path: Path) -> bool:
    """True when a RIFF/WAV file's header sizes match the file (the writer closed it)."""
    try:
        with path.open("rb") as f:
            head = f.read(12)
        size = path.stat().st_size
    except OSError:
        return False
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    return int.from_bytes(head[4:8], "little") + 8 == size and size > 44


def _netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


class Baresip:
    """A headless baresip listening on 127.0.0.1:port (UDP and TCP), no registration.

    user: the account user; calls must be addressed to sip:<user>@127.0.0.1:port.
    source_wav: what baresip plays into a call; by default a `source_seconds` long
      `source_tone` Hz sine (baresip hangs up when the file ends, so keep it longer
      than the call).
    answer: 'auto' (answers at once) or 'manual' (rings; use command('accept')).
    codecs: audio codecs offered/accepted, in order.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        user: str = "test",
        port: int | None = None,
        ctrl_port: int | None = None,
        rtp_port_count: int = 16,
        source_wav: Path | None = None,
        source_tone: float = 440.0,
        source_seconds: float = 120.0,
        answer: str = "auto",
        codecs: Sequence[str] = ("PCMU", "PCMA"),
        extra_config: Mapping[str, str] | None = None,
        sip_trace: bool = True,
    ) -> None:
        if answer not in ("auto", "manual"):
            raise ValueError("answer must be 'auto' or 'manual'")
        self.binary = require_binary("baresip", "baresip-core")
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else make_workdir("baresip")
        self.config_dir = self.workdir / "config"
        self.recordings_dir = self.workdir / "recordings"
        self.log_path = self.workdir / "baresip.log"
        self.user = user
        self.port = port if port is not None else _sip_port_pair()
        self.ctrl_port = ctrl_port if ctrl_port is not None else free_port(udp=False, tcp=True)
        self.rtp_port_min = free_udp_block(rtp_port_count, align=2)
        self.rtp_port_max = self.rtp_port_min + rtp_port_count - 1
        self.source_wav = source_wav
        self.source_tone = source_tone
        self.source_seconds = source_seconds
        self.answer = answer
        self.codecs = list(codecs)
        self.extra_config = dict(extra_config or {})
        self.sip_trace = sip_trace
        self.proc: subprocess.Popen[bytes] | None = None
        self.events: list[dict[str, Any]] = []
        self._responses: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._ctrl: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._token = 0

    # -- addresses -------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@{LOOPBACK}:{self.port}"

    @property
    def uri_tcp(self) -> str:
        return f"sip:{self.user}@{LOOPBACK}:{self.port};transport=tcp"

    # -- configuration ---------------------------------------------------------------

    def write_config(self) -> Path:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.recordings_dir.mkdir(parents=True, exist_ok=True)
        if self.source_wav is None:
            self.source_wav = write_wav(self.workdir / "source.wav", tone(self.source_tone, self.source_seconds), 8000)
        settings: dict[str, str] = {
            "poll_method": "epoll",
            "sip_listen": f"{LOOPBACK}:{self.port}",
            "net_interface": LOOPBACK,
            "call_local_timeout": "120",
            "call_max_calls": "4",
            "audio_player": "aufile,/dev/null",
            "audio_source": f"aufile,{self.source_wav}",
            "audio_alert": "aufile,/dev/null",
            "audio_level": "no",
            "ausrc_format": "s16",
            "auplay_format": "s16",
            "auenc_format": "s16",
            "audec_format": "s16",
            "rtp_ports": f"{self.rtp_port_min}-{self.rtp_port_max}",
            "rtcp_mux": "no",
            "jitter_buffer_delay": "1-10",
            "rtp_stats": "no",
            "module_path": _module_dir(),
            "snd_path": str(self.recordings_dir),
            "ctrl_tcp_listen": f"{LOOPBACK}:{self.ctrl_port}",
        }
        settings.update(self.extra_config)
        lines = [f"{k}\t{v}" for k, v in settings.items()]
        lines += [f"module\t{m}" for m in ("g711.so", "aufile.so", "sndfile.so", "ctrl_tcp.so")]
        lines += ["module_tmp\tuuid.so", "module_tmp\taccount.so", "module_app\tmenu.so"]
        (self.config_dir / "config").write_text("\n".join(lines) + "\n")
        account = (
            f"<sip:{self.user}@{LOOPBACK}>;regint=0;answermode={self.answer};"
            f"audio_codecs={','.join(self.codecs)}\n"
        )
        (self.config_dir / "accounts").write_text(account)
        return self.config_dir

    # -- lifecycle -------------------------------------------------------------------

    def start(self, wait: float = 15.0) -> Baresip:
        if self.proc is not None:
            raise PeerError("baresip already started")
        self.write_config()
        cmd = [self.binary, "-f", str(self.config_dir)]
        if self.sip_trace:
            cmd.append("-s")
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_ports(
                [(self.port, "udp"), (self.port, "tcp"), (self.ctrl_port, "tcp")],
                self.proc, wait, "baresip", self.log_path,
            )
            self._connect_ctrl()
        except BaseException:
            self.stop()
            raise
        return self

    def _connect_ctrl(self) -> None:
        self._ctrl = socket.create_connection((LOOPBACK, self.ctrl_port), timeout=5)
        self._ctrl.settimeout(0.2)
        self._reader = threading.Thread(target=self._read_ctrl, name="baresip-ctrl", daemon=True)
        self._reader.start()

    def _read_ctrl(self) -> None:
        buf = b""
        sock = self._ctrl
        while sock is not None:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while True:
                head, sep, rest = buf.partition(b":")
                if not sep or not head.isdigit() or len(rest) < int(head) + 1:
                    break
                size = int(head)
                payload, buf = rest[:size], rest[size + 1:]
                try:
                    msg = json.loads(payload)
                except ValueError:
                    continue
                with self._cond:
                    if msg.get("event"):
                        self.events.append(msg)
                    else:
                        self._responses.append(msg)
                    self._cond.notify_all()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- control ---------------------------------------------------------------------

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> dict[str, Any]:
        """Run a baresip command over ctrl_tcp ('dial', 'hangup', 'accept', 'quit', ...)."""
        if self._ctrl is None:
            raise PeerError("baresip control connection is not open")
        self._token += 1
        token = f"t{self._token}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._ctrl.sendall(_netstring(body))
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for resp in self._responses:
                    if resp.get("token") == token:
                        self._responses.remove(resp)
                        return resp
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"baresip did not answer {command!r} within {timeout}s")
                self._cond.wait(left)

    def wait_event(self, event_type: str, timeout: float = 10.0, after: int = 0) -> dict[str, Any]:
        """First event of `event_type` (e.g. CALL_ESTABLISHED, CALL_CLOSED) from index `after` on."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.events[after:]:
                    if ev.get("type") == event_type:
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [e.get("type") for e in self.events]
                    raise TimeoutError(f"no baresip {event_type} event within {timeout}s (seen: {seen})")
                self._cond.wait(left)

    def event_types(self) -> list[str]:
        with self._cond:
            return [str(e.get("type")) for e in self.events]

    # -- results ---------------------------------------------------------------------

    def recordings(self) -> list[Path]:
        """All WAV files sndfile wrote, oldest first."""
        if not self.recordings_dir.exists():
            return []
        return sorted(self.recordings_dir.glob("dump-*.wav"))

    def recording(self, kind: str = "dec", timeout: float = 5.0) -> Path:
        """Latest recording: 'dec' = far-end audio baresip heard, 'enc' = what it sent.

        Waits until the WAV is complete: libsndfile writes the final sizes into the
        header when the call's audio is torn down, just after the CALL_CLOSED event.
        """
        if kind not in ("dec", "enc"):
            raise ValueError("kind is 'dec' (heard) or 'enc' (sent)")
        deadline = time.monotonic() + timeout
        while True:
            files = [p for p in self.recordings() if p.name.endswith(f"-{kind}.wav")]
            if files and wav_complete(files[-1]):
                return files[-1]
            if time.monotonic() > deadline:
                state = "incomplete" if files else "missing"
                raise PeerError(f"baresip {kind} recording {state} in {self.recordings_dir}: {self.recordings()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- shutdown --------------------------------------------------------------------

    def stop(self) -> int | None:
        """Quit over ctrl_tcp (closes calls and recordings), else SIGTERM/SIGKILL."""
        if self.proc is None:
            return None
        if self.proc.poll() is None and self._ctrl is not None:
            with contextlib.suppress(OSError, TimeoutError, PeerError):
                self.command("quit", timeout=2.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        code = stop_process(self.proc, grace=5.0)
        if self._ctrl is not None:
            with contextlib.suppress(OSError):
                self._ctrl.close()
            self._ctrl = None
        if self._reader is not None:
            self._reader.join(timeout=2)
            self._reader = None
        return code

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Baresip:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["Baresip", "wav_complete"]


def _sip_port_pair() -> int:
    """A free SIP port whose next port is free for TCP too: baresip also listens for TLS on port + 1."""
    for _ in range(100):
        port = free_port(udp=True, tcp=True)
        if _can_bind(port + 1, socket.SOCK_STREAM):
            return port
    raise PeerError("no free SIP port pair found on 127.0.0.1")
