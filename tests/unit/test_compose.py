"""docker-compose.yml, the Dockerfiles and config/gateway.compose.yaml fit together.

No Docker engine is needed. The YAML checks always run: services, healthchecks,
depends_on conditions, published ports against the gateway's configuration, and every
GATEWAY__ variable of the compose file loaded through the gateway's own configuration
code, so a variable that names no key fails here. When a compose client is installed
(`docker compose` v2 or `docker-compose` v1), `config --quiet` validates the file too.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from gateway.config import ENV_PREFIX, Settings, apply_env_overrides, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
CARRIER_DOCKERFILE = ROOT / "docker" / "carrier" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CONFIG_IN_CONTAINER = "/etc/orbit/gateway.yaml"


def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def mounted_config(gateway: dict[str, Any]) -> Path:
    for volume in gateway.get("volumes", []):
        if isinstance(volume, str) and ":" in volume:
            source, target = volume.split(":")[:2]
            if target == CONFIG_IN_CONTAINER:
                return (ROOT / source).resolve()
    raise AssertionError(f"the gateway service mounts no file at {CONFIG_IN_CONTAINER}")


NODES = ("gateway", "gateway-2")
PROXY_CONF = ROOT / "docker" / "proxy" / "nginx.conf"


def gateway_settings(name: str = "gateway") -> tuple[Settings, dict[str, str]]:
    gateway = services()[name]
    env = {k: v for k, v in env_of(gateway).items() if k.startswith(ENV_PREFIX)}
    return load_settings(mounted_config(gateway), environ=env), env


def published(service: dict[str, Any]) -> set[str]:
    """'8080/tcp', '5060/udp', '20000-20099/udp' (container side) of the short port syntax."""
    out = set()
    for entry in service.get("ports", []):
        spec, _, proto = str(entry).partition("/")
        container = spec.split(":")[-1]
        out.add(f"{container}/{proto or 'tcp'}")
    return out


# --------------------------------------------------------------------------- compose client


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is not None:
        return [legacy]
    return None


def test_compose_client_validates_the_file_when_installed() -> None:
    cmd = compose_command()
    if cmd is None:
        # No compose client on this machine: the YAML checks below are the whole check.
        return
    for extra in ([], ["--profile", "demo"]):
        r = subprocess.run(
            [*cmd, "-f", str(COMPOSE), *extra, "config", "--quiet"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert r.returncode == 0, f"{' '.join(cmd)} {' '.join(extra)} config: {r.stderr}"
    r = subprocess.run(
        [*cmd, "-f", str(COMPOSE), "--profile", "demo", "config", "--services"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert set(r.stdout.split()) == {*NODES, "api", "postgres", "minio", "minio-init", "carrier", "agent"}


# --------------------------------------------------------------------------- structure


def test_services_and_profiles() -> None:
    s = services()
    assert set(s) == {*NODES, "api", "postgres", "minio", "minio-init", "carrier", "agent"}
    for name in (*NODES, "api", "postgres", "minio", "minio-init"):
        assert "profiles" not in s[name], name
    for name in ("carrier", "agent"):
        assert s[name]["profiles"] == ["demo"], name
    assert s["gateway"]["build"] == "."
    assert s["postgres"]["image"] == "postgres:16"
    assert s["minio"]["image"].startswith("minio/minio")
    assert s["minio-init"]["image"].startswith("minio/mc")
    assert s["minio-init"]["restart"] == "no"
    # The agent runs the example echo agent from the gateway's own image.
    agent = s["agent"]
    assert agent["build"] == "." and agent["image"] == s["gateway"]["image"]
    assert agent["command"] == ["python", "examples/echo_agent.py", "--host", "0.0.0.0", "--port", "9000"]
    assert (ROOT / "examples" / "echo_agent.py").is_file()
    carrier_build = s["carrier"]["build"]
    assert (ROOT / carrier_build["context"] / carrier_build["dockerfile"]).resolve() == CARRIER_DOCKERFILE


def test_healthchecks_and_start_order() -> None:
    s = services()
    for name in ("gateway", "postgres", "minio"):
        check = s[name]["healthcheck"]
        assert check["test"] and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert check["interval"] and check["retries"] >= 3, name
    assert "pg_isready" in " ".join(s["postgres"]["healthcheck"]["test"])
    assert "/readyz" in " ".join(s["gateway"]["healthcheck"]["test"])
    assert s["gateway"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "minio": {"condition": "service_healthy"},
        "minio-init": {"condition": "service_completed_successfully"},
    }
    assert s["minio-init"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    # Draining on SIGTERM needs more time than compose's default 10 s.
    grace = int(re.fullmatch(r"(\d+)s", s["gateway"]["stop_grace_period"]).group(1))  # type: ignore[union-attr]
    settings, _ = gateway_settings()
    assert grace >= settings.http.drain_timeout_seconds + 5


def test_minio_init_creates_the_configured_bucket_with_the_root_credentials() -> None:
    s = services()
    init_env, minio_env = env_of(s["minio-init"]), env_of(s["minio"])
    settings, _ = gateway_settings()
    script = " ".join(s["minio-init"]["entrypoint"])
    assert "mc alias set local http://minio:9000" in script
    assert "mc mb --ignore-existing" in script
    assert init_env["BUCKET"] == settings.storage.s3.bucket
    assert init_env["MINIO_ROOT_USER"] == minio_env["MINIO_ROOT_USER"]
    assert init_env["MINIO_ROOT_PASSWORD"] == minio_env["MINIO_ROOT_PASSWORD"]


# --------------------------------------------------------------------------- gateway configuration


def test_every_gateway_variable_names_a_real_configuration_key() -> None:
    gateway = services()["gateway"]
    env = env_of(gateway)
    prefixed = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    assert set(prefixed) == set(env), "the gateway service should only get GATEWAY__ variables"
    assert {
        "GATEWAY__DATABASE__URL",
        "GATEWAY__STORAGE__BACKEND",
        "GATEWAY__STORAGE__S3__ENDPOINT_URL",
        "GATEWAY__STORAGE__S3__ACCESS_KEY_ID",
        "GATEWAY__STORAGE__S3__SECRET_ACCESS_KEY",
        "GATEWAY__HTTP__HOST",
        "GATEWAY__SIP__HOST",
    } <= set(prefixed)
    doc = yaml.safe_load(mounted_config(gateway).read_text())
    merged = apply_env_overrides(copy.deepcopy(doc), prefixed)
    settings = Settings(**merged)  # unknown keys are errors (extra="forbid")
    for name, raw in prefixed.items():
        node: Any = settings
        for part in name[len(ENV_PREFIX) :].lower().split("__"):
            node = node[int(part)] if part.isdigit() else getattr(node, part)
        if hasattr(node, "get_secret_value"):
            node = node.get_secret_value()
        assert str(node) == raw, f"{name}={raw} did not arrive: the setting is {node!r}"
    # Each variable alone is a valid override of the defaults, too.
    for name, raw in prefixed.items():
        Settings(**apply_env_overrides({}, {name: raw}))


def test_gateway_reaches_postgres_and_minio_with_their_credentials() -> None:
    s = services()
    settings, _ = gateway_settings()
    pg = env_of(s["postgres"])
    url = urlsplit(settings.database.url.replace("postgresql+asyncpg", "postgresql"))
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert (url.username, url.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
    assert url.path.lstrip("/") == pg["POSTGRES_DB"]
    s3 = settings.storage.s3
    assert settings.storage.backend == "s3"
    assert s3.endpoint_url == "http://minio:9000"
    minio = env_of(s["minio"])
    assert s3.access_key_id == minio["MINIO_ROOT_USER"]
    assert s3.secret_access_key is not None
    assert s3.secret_access_key.get_secret_value() == minio["MINIO_ROOT_PASSWORD"]
    assert len(minio["MINIO_ROOT_PASSWORD"]) >= 8  # MinIO refuses shorter ones


def test_published_ports_match_each_nodes_configuration() -> None:
    s = services()
    seen: set[str] = set()
    node_ids = set()
    for name in NODES:
        settings, _ = gateway_settings(name)
        assert settings.http.host == "0.0.0.0" and settings.sip.host == "0.0.0.0"
        assert settings.database.url.startswith("postgresql+asyncpg://")  # nodes share PostgreSQL
        node_ids.add(settings.node_id)
        ports = published(s[name])
        assert ports == {f"{settings.sip.port}/udp", f"{settings.sip.port}/tcp", f"{settings.rtp.port_min}-{settings.rtp.port_max}/udp"}
        assert not ports & seen, "two nodes publish the same port"
        seen |= ports
        # The host side equals the container side: SDP and Via carry these numbers.
        for entry in s[name]["ports"]:
            host_side, container = str(entry).split("/")[0].split(":")[-2:]
            assert host_side == container
    assert None not in node_ids and len(node_ids) == len(NODES)
    # The API is published once, by the proxy, on the nodes' HTTP port.
    settings, _ = gateway_settings()
    assert published(s["api"]) == {f"{settings.http.port}/tcp"}


def test_the_proxy_sends_the_api_to_every_node() -> None:
    conf = PROXY_CONF.read_text()
    upstreams = set(re.findall(r"server (\S+?):(\d+)", conf))
    assert {h for h, _ in upstreams} == set(NODES)
    settings, _ = gateway_settings()
    assert {int(p) for _, p in upstreams} == {settings.http.port}
    assert f"listen {settings.http.port};" in conf
    assert "./docker/proxy/nginx.conf:/etc/nginx/nginx.conf:ro" in services()["api"]["volumes"]


def test_fixed_addresses_for_sdp_and_the_demo_carrier() -> None:
    doc = compose()
    s = doc["services"]
    subnet = ipaddress.ip_network(doc["networks"]["default"]["ipam"]["config"][0]["subnet"])
    settings, env = gateway_settings()
    gateway_ip = s["gateway"]["networks"]["default"]["ipv4_address"]
    carrier_ip = s["carrier"]["networks"]["default"]["ipv4_address"]
    assert ipaddress.ip_address(gateway_ip) in subnet and ipaddress.ip_address(carrier_ip) in subnet
    # SDP must carry an address the carrier can send RTP to, never 0.0.0.0: each node its own.
    assert settings.sip.public_host == gateway_ip == env["GATEWAY__SIP__PUBLIC_HOST"]
    second, _ = gateway_settings("gateway-2")
    second_ip = s["gateway-2"]["networks"]["default"]["ipv4_address"]
    assert second.sip.public_host == second_ip != gateway_ip and ipaddress.ip_address(second_ip) in subnet
    # The trunk points at the carrier, which binds that address and port.
    trunk = settings.trunks[0].target
    command = s["carrier"]["command"]
    assert trunk.host == carrier_ip == command[command.index("-i") + 1] == command[command.index("-mi") + 1]
    assert str(trunk.port) == command[command.index("-p") + 1]
    assert trunk.transport == "udp" and command[command.index("-t") + 1] == "u1"
    # The agent is reached by its service name on the port it listens on.
    agent_url = urlsplit(settings.agents[0].url)
    agent_cmd = s["agent"]["command"]
    assert agent_url.hostname == "agent" and str(agent_url.port) == agent_cmd[agent_cmd.index("--port") + 1]


# --------------------------------------------------------------------------- Dockerfiles


def _ignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    first = path.split("/")[0]
    return any(p in (path, first) for p in patterns)


def _copy_sources(dockerfile: Path) -> list[str]:
    sources = []
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            args = [a for a in line.split()[1:] if not a.startswith("--")]
            sources += args[:-1]
    return sources


def test_gateway_dockerfile() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"(?m)^FROM python:3\.11-slim\b", text)
    assert "libsndfile1" in text
    assert re.search(r"(?m)^RUN pip install \.", text)
    users = re.findall(r"(?m)^USER (\S+)$", text)
    assert users and users[-1] not in ("root", "0")
    cmd = re.findall(r"(?m)^CMD (.+)$", text)[-1]
    assert yaml.safe_load(cmd) == ["orbit-gateway", "serve", "--config", CONFIG_IN_CONTAINER]
    for source in _copy_sources(DOCKERFILE):
        assert (ROOT / source).exists(), source
        assert not _ignored(source), f"{source} is excluded by .dockerignore"
    assert "gateway.example.yaml" in text  # a configuration is always there


def test_carrier_dockerfile_uses_the_demo_scenario() -> None:
    text = CARRIER_DOCKERFILE.read_text()
    assert "sip-tester" in text
    for source in _copy_sources(CARRIER_DOCKERFILE):
        assert (ROOT / source).is_file(), source
        assert not _ignored(source), f"{source} is excluded by .dockerignore"
    assert "scripts/demo/carrier.xml" in text and "scripts/demo/carrier_audio.py" in text
    # The scenario streams the file the image builds.
    assert 'rtp_stream="carrier.ulaw' in (ROOT / "scripts" / "demo" / "carrier.xml").read_text()
    assert re.search(r"(?m)^USER (?!root)\S+$", text)


def test_dockerignore_keeps_the_build_context_small() -> None:
    for path in (".git", ".venv", "data", "tests"):
        assert _ignored(path), path
    for path in ("gateway", "media", "examples", "pyproject.toml", "README.md", "scripts/demo/carrier.xml"):
        assert not _ignored(path), path
