"""moto's standalone server as a real S3-compatible HTTP endpoint on 127.0.0.1.

    with MotoServer() as s3:
        client = s3.client()          # boto3, path-style, test keys
        client.create_bucket(Bucket="recordings")

moto accepts any access key and does not verify presigned signatures or expiry: tests
of URL expiry need the gateway's own checks.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.peers import LOOPBACK, PeerError, free_port, make_workdir, stop_process, wait_for_ports

ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"
REGION = "us-east-1"


def moto_server_binary() -> str:
    """moto_server next to the running interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "moto_server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("moto_server")
    if found:
        return found
    raise PeerError('moto_server not found: run `make test` (installs "moto[server]" into the venv)')


class MotoServer:
    def __init__(self, port: int | None = None, workdir: Path | None = None) -> None:
        self.binary = moto_server_binary()
        self.port = port if port is not None else free_port(udp=False, tcp=True)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else make_workdir("moto")
        self.log_path = self.workdir / "moto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def access_key(self) -> str:
        return ACCESS_KEY

    @property
    def secret_key(self) -> str:
        return SECRET_KEY

    @property
    def region(self) -> str:
        return REGION

    def start(self, wait: float = 30.0) -> MotoServer:
        if self.proc is not None:
            raise PeerError("moto_server already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [self.binary, "-H", LOOPBACK, "-p", str(self.port)],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            deadline = time.monotonic() + wait
            wait_for_ports([(self.port, "tcp")], self.proc, wait, "moto_server", self.log_path)
            while not self._ready():
                if self.proc.poll() is not None:
                    raise PeerError(f"moto_server exited with code {self.proc.returncode}: {self.log()[-2000:]}")
                if time.monotonic() > deadline:
                    raise PeerError(f"moto_server not answering HTTP within {wait}s: {self.log()[-2000:]}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=2) as resp:
                return int(resp.status) < 500
        except urllib.error.HTTPError as exc:
            return exc.code < 500
        except OSError:
            return False

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset API)."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=5):
            pass

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for boto3.client('s3', ...) against this server."""
        from botocore.config import Config

        return {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "region_name": REGION,
            "config": Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
        }

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", **self.client_kwargs())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        return stop_process(self.proc, grace=5.0)

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> MotoServer:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["ACCESS_KEY", "REGION", "SECRET_KEY", "MotoServer", "moto_server_binary"]
