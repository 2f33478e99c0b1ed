"""Kamailio (5.6) as a real SIP proxy in front of a SIPp far end: a trunk that demands
digest authentication (407, then relays with Record-Route).

    with SippUas("uas_answer_remote_bye") as far_end:
        with KamailioProxy(downstream=far_end.address, username="trunkuser", password="s3cret") as proxy:
            ...  # the caller sends its INVITE to proxy.uri (udp) or proxy.uri_tcp

The config is rendered from tests/interop/kamailio/<template> by replacing @@NAME@@
placeholders, checked with `kamailio -c` and run in the foreground (-DD -E) with its log
in `<workdir>/kamailio.log`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

from tests.support.peers import (
    KAMAILIO_DIR,
    LOOPBACK,
    PeerError,
    free_port,
    make_workdir,
    require_binary,
    stop_process,
    wait_for_ports,
)

DEFAULT_MODULE_PATHS = (
    "/usr/lib/x86_64-linux-gnu/kamailio/modules",
    "/usr/lib/aarch64-linux-gnu/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/local/lib64/kamailio/modules",
    "/usr/local/lib/kamailio/modules",
)


def module_path() -> str:
    for candidate in DEFAULT_MODULE_PATHS:
        if (Path(candidate) / "tm.so").is_file():
            return candidate
    raise PeerError("Kamailio modules (tm.so) not found: run `make test`, which installs the interop peers")


def render_template(template: str | Path, values: Mapping[str, object]) -> str:
    """Replace every @@NAME@@ with values['NAME']; fails on a placeholder left over."""
    path = Path(template)
    if not path.is_absolute() and not path.exists():
        path = KAMAILIO_DIR / path
    text = path.read_text()
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", str(value))
    if "@@" in text:
        left = sorted({part.split("@@")[0] for part in text.split("@@")[1::2]})
        raise PeerError(f"{path}: placeholders without a value: {left}")
    return text


class KamailioProxy:
    """Kamailio on 127.0.0.1:port (UDP and TCP) challenging INVITEs, relaying to `downstream`.

    downstream: 'host:port' of the far end (a SippUas). downstream_transport: 'udp'/'tcp'.
    realm / username / password: the digest credentials it accepts.
    template: a file in tests/interop/kamailio/; extra: more @@NAME@@ values for it.
    """

    def __init__(
        self,
        downstream: str,
        *,
        downstream_transport: str = "udp",
        realm: str = "trunk.example.test",
        username: str = "orbit",
        password: str = "s3cret-password",
        port: int | None = None,
        template: str | Path = "auth_proxy.cfg.tmpl",
        extra: Mapping[str, object] | None = None,
        debug: int = 2,
        workdir: Path | None = None,
    ) -> None:
        if downstream_transport not in ("udp", "tcp"):
            raise ValueError("downstream_transport must be udp or tcp")
        self.binary = require_binary("kamailio", "kamailio")
        host, _, dport = downstream.rpartition(":")
        if not host or not dport.isdigit():
            raise ValueError(f"downstream must be host:port, not {downstream!r}")
        self.downstream_host = host
        self.downstream_port = int(dport)
        self.downstream_transport = downstream_transport
        self.realm = realm
        self.username = username
        self.password = password
        self.port = port if port is not None else free_port(udp=True, tcp=True)
        self.template = template
        self.extra = dict(extra or {})
        self.debug = debug
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else make_workdir("kamailio")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cfg_path = self.workdir / "kamailio.cfg"
        self.pid_path = self.workdir / "kamailio.pid"
        self.run_dir = self.workdir / "run"
        self.log_path = self.workdir / "kamailio.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def uri(self) -> str:
        return f"sip:{LOOPBACK}:{self.port}"

    @property
    def uri_tcp(self) -> str:
        return f"sip:{LOOPBACK}:{self.port};transport=tcp"

    def values(self) -> dict[str, object]:
        values: dict[str, object] = {
            "PORT": self.port,
            "REALM": self.realm,
            "USERNAME": self.username,
            "PASSWORD": self.password,
            "DOWNSTREAM_HOST": self.downstream_host,
            "DOWNSTREAM_PORT": self.downstream_port,
            "DOWNSTREAM_TRANSPORT": self.downstream_transport,
            "MODULE_PATH": module_path(),
            "DEBUG": self.debug,
        }
        values.update(self.extra)
        return values

    def write_config(self) -> Path:
        self.cfg_path.write_text(render_template(self.template, self.values()))
        return self.cfg_path

    def check_config(self) -> None:
        """`kamailio -c`: fails with Kamailio's own message when the config is wrong."""
        out = subprocess.run(
            [self.binary, "-c", "-f", str(self.cfg_path), "-Y", str(self.run_dir)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=self.workdir,
        )
        if out.returncode != 0:
            raise PeerError(f"kamailio -c rejected {self.cfg_path}:\n{out.stdout}\n{out.stderr}")

    def command(self) -> list[str]:
        cmd = [
            self.binary,
            "-f", str(self.cfg_path),
            "-DD", "-E",
            "-P", str(self.pid_path),
            "-Y", str(self.run_dir),
            "-w", str(self.workdir),
            "-m", "32",
            "-M", "8",
        ]
        if os.geteuid() == 0:
            # Root is fine for loopback tests; say so explicitly rather than rely on defaults.
            cmd += ["-u", "root", "-g", "root"]
        return cmd

    def start(self, wait: float = 15.0) -> KamailioProxy:
        if self.proc is not None:
            raise PeerError("kamailio already started")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        self.check_config()
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_ports([(self.port, "udp"), (self.port, "tcp")], self.proc, wait, "kamailio", self.log_path)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int | None:
        """SIGTERM to the main process (it ends its children), SIGKILL to its group if needed."""
        if self.proc is None:
            return None
        code: int | None = self.proc.returncode
        if self.proc.poll() is None:
            try:
                code = stop_process(self.proc, grace=10.0)
            finally:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        return code

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> KamailioProxy:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["KamailioProxy", "module_path", "render_template"]
