"""Gateway configuration: one YAML file plus `GATEWAY__`-prefixed environment overrides.

Environment variables use `__` to nest, and numbers index lists, so secrets can
stay out of the file::

    GATEWAY__HTTP__PORT=9090
    GATEWAY__TRUNKS__0__PASSWORD=s3cret
    GATEWAY__ACCOUNTS__0__API_KEYS='["sha256:..."]'

Values from the environment are read as YAML scalars or flow collections, so
`9090` is a number, `true` a boolean and `[udp, tcp]` a list.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.numbers import PhoneNumber
from gateway.sip.errors import SipError
from gateway.sip.uri import SipUri
from media.agent.endpoint import AgentEndpoint

ENV_PREFIX = "GATEWAY__"
SHA256_KEY_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


class ConfigError(Exception):
    """The configuration cannot be used. The message names the key and the problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8080"
    # Key for signed list cursors and recording URLs. Several nodes must share it; when
    # it is not set, the gateway keeps a generated one in the database.
    signing_secret: SecretStr | None = None
    drain_timeout_seconds: float = Field(30.0, ge=0)
    # Larger request bodies are refused with 413 without being read.
    max_body_bytes: int = Field(65536, ge=1024)
    # Several node processes on one machine share the HTTP port (SO_REUSEPORT).
    reuse_port: bool = False

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:8080")
        return v.rstrip("/")


class SipConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(5060, ge=0, le=65535)
    transports: list[Literal["udp", "tcp"]] = Field(default_factory=lambda: ["udp", "tcp"], min_length=1)  # type: ignore[arg-type]
    # Address written into Via/Contact/SDP when the gateway sits behind NAT.
    public_host: str | None = None
    user_agent: str = "orbit-gateway"
    t1: float = Field(0.5, gt=0, description="RFC 3261 T1 (RTT estimate), seconds")
    t2: float = Field(4.0, gt=0, description="RFC 3261 T2 (max non-INVITE retransmit interval)")
    t4: float = Field(5.0, gt=0, description="RFC 3261 T4 (max time a message stays in the network)")
    session_expires_seconds: int = Field(1800, ge=90)
    min_se_seconds: int = Field(90, ge=90)
    # Larger SIP messages are refused: 513 to a trunk's request, dropped otherwise; a TCP
    # connection carrying one is closed (it cannot be resynchronised).
    max_message_bytes: int = Field(65536, ge=4096, le=1048576)
    # Inbound SIP over TCP, so that no one can exhaust the process's file descriptors.
    # Trunk addresses are not held to the two connection limits; the gateway's own
    # connections to its trunks are never limited.
    tcp_max_connections: int = Field(1024, ge=1)
    tcp_max_connections_per_source: int = Field(32, ge=1)
    # A new inbound connection must carry a valid SIP message this soon, or it is closed.
    tcp_first_message_timeout_seconds: float = Field(10.0, gt=0)
    # A connection without traffic this long (RFC 5626 CRLF keep-alives count) is closed,
    # unless a call still rests on it.
    tcp_idle_timeout_seconds: float = Field(300.0, gt=0)
    # "trunks": accept inbound TCP only from trunk addresses (trunk hosts and inbound_addresses).
    tcp_accept: Literal["any", "trunks"] = "any"


class RtpConfig(_Section):
    port_min: int = Field(20000, ge=1024, le=65534)
    port_max: int = Field(20999, ge=1025, le=65535)
    media_timeout_seconds: float = Field(30.0, gt=0)
    hold_timeout_seconds: float = Field(600.0, gt=0)

    @model_validator(mode="after")
    def _range(self) -> RtpConfig:
        if self.port_max - self.port_min < 1:
            raise ValueError(
                "port_max must be greater than port_min (each call needs an even RTP port and RTP+1)"
            )
        return self


class DatabaseConfig(_Section):
    url: str = "sqlite+aiosqlite:///./data/gateway.db"

    @field_validator("url")
    @classmethod
    def _driver(cls, v: str) -> str:
        if not (v.startswith("sqlite+aiosqlite://") or v.startswith("postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return v


class S3Config(_Section):
    endpoint_url: str | None = None
    bucket: str = "recordings"
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    prefix: str = "recordings/"
    url_mode: Literal["presigned", "public"] = "presigned"
    public_base_url: str | None = None
    presign_ttl_seconds: int = Field(3600, ge=1, le=604800)

    @model_validator(mode="after")
    def _public(self) -> S3Config:
        if self.url_mode == "public" and not self.public_base_url:
            raise ValueError("url_mode 'public' needs public_base_url")
        return self


class StorageConfig(_Section):
    backend: Literal["local", "s3"] = "local"
    local_dir: Path = Path("./data/recordings")
    url_ttl_seconds: int = Field(3600, ge=1, description="lifetime of signed local recording URLs")
    s3: S3Config = Field(default_factory=S3Config)


class AccountConfig(_Section):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    # Plaintext keys or "sha256:<hex>"; only the hashes are kept in memory.
    api_keys: list[SecretStr] = Field(min_length=1)
    numbers: list[PhoneNumber] = Field(default_factory=list)
    default_from: PhoneNumber | None = None
    # "possible" (default): a known country code and a length it uses. "valid": also in a
    # range assigned to a carrier, which refuses test and fictional numbers such as +1555...
    number_validation: Literal["possible", "valid"] = "possible"
    webhook_secret: SecretStr | None = None
    # During a secret rotation deliveries are signed with both (new first).
    webhook_secret_previous: SecretStr | None = None
    webhook_url: str | None = None

    @field_validator("api_keys")
    @classmethod
    def _keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for key in keys:
            raw = key.get_secret_value()
            if raw.startswith("sha256:") and not SHA256_KEY_RE.fullmatch(raw):
                raise ValueError("a hashed key must be 'sha256:' followed by 64 lowercase hex digits")
            if not raw.startswith("sha256:") and len(raw) < 16:
                raise ValueError("an API key must be at least 16 characters")
        return keys

    @model_validator(mode="after")
    def _default_from(self) -> AccountConfig:
        if self.default_from is not None and self.default_from not in self.numbers:
            raise ValueError(f"default_from {self.default_from} is not one of the account's numbers")
        return self

    def key_hashes(self) -> list[bytes]:
        return [api_key_hash(k.get_secret_value()) for k in self.api_keys]


def api_key_hash(configured: str) -> bytes:
    """SHA-256 digest of an API key given as plaintext or as `sha256:<hex>`."""
    if configured.startswith("sha256:"):
        return bytes.fromhex(configured.removeprefix("sha256:"))
    return hashlib.sha256(configured.encode()).digest()


class AgentConfig(_Section):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    url: str
    protocol: Literal["orbit-voice", "twilio"] = "orbit-voice"
    sample_rate: Literal[8000, 16000, 24000] = 16000
    headers: dict[str, str] = Field(default_factory=dict)
    connect_timeout_seconds: float = Field(5.0, gt=0)
    on_failure: Literal["hangup", "continue"] = "hangup"
    reconnect_attempts: int = Field(2, ge=0, le=20)
    stop_grace_seconds: float = Field(1.0, ge=0, le=30)

    @field_validator("url")
    @classmethod
    def _ws(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError("must be a ws:// or wss:// URL")
        return v

    @model_validator(mode="after")
    def _twilio_rate(self) -> AgentConfig:
        if self.protocol == "twilio" and self.sample_rate != 8000:
            # Twilio Media Streams is 8 kHz mu-law only; say so rather than resample silently.
            raise ValueError("protocol 'twilio' carries 8 kHz mu-law: set sample_rate to 8000")
        return self

    def endpoint(self) -> AgentEndpoint:
        """What the media plane's AgentBridge needs to reach this agent (on_failure stays here:
        it is call control's policy)."""
        return AgentEndpoint(
            id=self.id,
            url=self.url,
            protocol=self.protocol,
            sample_rate=self.sample_rate,
            headers=self.headers,
            connect_timeout_seconds=self.connect_timeout_seconds,
            reconnect_attempts=self.reconnect_attempts,
            stop_grace_seconds=self.stop_grace_seconds,
        )


class TrunkConfig(_Section):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    uri: str
    username: str | None = None
    password: SecretStr | None = None
    prefixes: list[str] = Field(default_factory=lambda: ["+"], min_length=1)
    number_format: Literal["e164", "digits"] = "e164"
    tech_prefix: str = Field("", pattern=r"^[0-9#*]*$")
    codecs: list[Literal["PCMU", "PCMA"]] = Field(default_factory=lambda: ["PCMU", "PCMA"], min_length=1)  # type: ignore[arg-type]
    max_concurrent: int = Field(100, ge=1)
    calls_per_second: float = Field(10.0, gt=0)
    queue_size: int = Field(100, ge=0, description="calls waiting for the rate limit before 429")
    # A queued call not dialled within this time ends failed with cause queue_timeout.
    queue_timeout_seconds: float = Field(60.0, gt=0, le=3600)
    ring_timeout_seconds: float = Field(60.0, gt=0, le=600)
    # Extra source addresses (IPs) this trunk's carrier sends SIP from.
    inbound_addresses: list[str] = Field(default_factory=list)

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        parse_trunk_uri(v)
        return v

    @field_validator("prefixes")
    @classmethod
    def _prefixes(cls, v: list[str]) -> list[str]:
        for p in v:
            if not re.fullmatch(r"\+?[0-9]*", p) or p == "":
                raise ValueError(f"prefix {p!r} must be '+' and/or digits, e.g. '+1' or '+44'")
        return v

    @field_validator("inbound_addresses")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for a in v:
            ipaddress.ip_address(a)
        return v

    @model_validator(mode="after")
    def _auth_pair(self) -> TrunkConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self

    @property
    def target(self) -> TrunkTarget:
        return parse_trunk_uri(self.uri)


class TrunkTarget(BaseModel):
    model_config = ConfigDict(frozen=True)
    host: str
    port: int
    transport: Literal["udp", "tcp"]


def parse_trunk_uri(uri: str) -> TrunkTarget:
    """Where a trunk's INVITEs go, from its SIP URI (parsed by the SIP layer's own parser)."""
    try:
        parsed = SipUri.parse(uri)
    except SipError:
        raise ValueError("must be a SIP URI such as sip:carrier.example.com:5060;transport=udp") from None
    if parsed.scheme != "sip" or not parsed.host:
        raise ValueError("must be a SIP URI such as sip:carrier.example.com:5060;transport=udp")
    transport = parsed.transport or "udp"
    if transport not in ("udp", "tcp"):
        raise ValueError(f"transport {transport!r} is not supported (udp or tcp)")
    port = parsed.port if parsed.port is not None else 5060
    if not 0 < port < 65536:
        raise ValueError("port out of range")
    return TrunkTarget(host=parsed.host_address, port=port, transport=transport)


class LimitsConfig(_Section):
    max_duration_ceiling: int = Field(14400, ge=1)
    metadata_max_bytes: int = Field(16384, ge=2)
    # Levels of objects/arrays inside `metadata` (metadata itself is level 1).
    metadata_max_depth: int = Field(16, ge=1, le=64)
    default_max_duration: int = Field(3600, ge=1)

    @model_validator(mode="after")
    def _default(self) -> LimitsConfig:
        if self.default_max_duration > self.max_duration_ceiling:
            raise ValueError("default_max_duration must not exceed max_duration_ceiling")
        return self


class WebhooksConfig(_Section):
    allow_private_targets: bool = False
    timeout_seconds: float = Field(10.0, gt=0, le=60)
    retry_schedule_seconds: list[float] = Field(
        default_factory=lambda: [0.0, 60.0, 300.0, 1800.0, 7200.0, 28800.0, 86400.0], min_length=1
    )
    # A node claims a delivery for this long; if it dies meanwhile, another node sends it after.
    lease_seconds: float = Field(60.0, gt=0, le=3600)


class ClusterConfig(_Section):
    """Nodes on one database. Each renews a lease every `renew_seconds`; a node whose lease is
    `lease_seconds` old is lost, and a peer ends and settles its calls."""

    lease_seconds: float = Field(15.0, gt=0, le=600)
    renew_seconds: float = Field(5.0, gt=0, le=120)
    # How often a node looks for requests addressed to it that a missed notification hid.
    command_poll_seconds: float = Field(1.0, gt=0, le=30)

    @model_validator(mode="after")
    def _renew_within_lease(self) -> ClusterConfig:
        if self.renew_seconds * 2 > self.lease_seconds:
            raise ValueError("renew_seconds must be at most half of lease_seconds (one missed renewal must not lose the node)")
        return self


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class Settings(BaseSettings):
    """The whole configuration. Unknown keys are errors, so typos do not pass silently."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    http: HttpConfig = Field(default_factory=HttpConfig)
    sip: SipConfig = Field(default_factory=SipConfig)
    rtp: RtpConfig = Field(default_factory=RtpConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    accounts: list[AccountConfig] = Field(default_factory=list)
    agents: list[AgentConfig] = Field(default_factory=list)
    trunks: list[TrunkConfig] = Field(default_factory=list)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    # Names this gateway node in the call records; keep it stable across restarts so a
    # node settles the calls its previous run left live. Default: the host name.
    node_id: str | None = Field(None, min_length=1, max_length=64)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML document with the environment already merged in arrives as init data.
        return (init_settings,)

    @model_validator(mode="after")
    def _unique(self) -> Settings:
        for name, items in (("accounts", self.accounts), ("agents", self.agents), ("trunks", self.trunks)):
            seen: set[str] = set()
            for item in items:
                if item.id in seen:
                    raise ValueError(f"{name}: id {item.id!r} appears twice")
                seen.add(item.id)
        owners: dict[bytes, str] = {}
        for account in self.accounts:
            for h in account.key_hashes():
                if h in owners:
                    raise ValueError(f"accounts: an API key of {account.id!r} is also a key of {owners[h]!r}")
                owners[h] = account.id
        return self

    def account(self, account_id: str) -> AccountConfig | None:
        return next((a for a in self.accounts if a.id == account_id), None)

    def agent(self, agent_id: str) -> AgentConfig | None:
        return next((a for a in self.agents if a.id == agent_id), None)

    def route(self, number: str) -> TrunkConfig | None:
        return route(self.trunks, number)


def route(trunks: Sequence[TrunkConfig], number: str) -> TrunkConfig | None:
    """The trunk whose longest prefix matches `number` (first trunk wins a tie)."""
    best: tuple[int, TrunkConfig] | None = None
    for trunk in trunks:
        for prefix in trunk.prefixes:
            if number.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), trunk)
    return best[1] if best else None


def _env_value(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw


def apply_env_overrides(doc: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Merge `GATEWAY__A__B=...` variables into the document (lists indexed by number)."""
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path:
            continue
        node: Any = doc
        for i, key in enumerate(path):
            last = i == len(path) - 1
            value: Any = _env_value(environ[name]) if last else {}
            if isinstance(node, list):
                if not key.isdigit():
                    raise ConfigError(f"{name}: {'.'.join(path[:i])} is a list; use a number, not {key!r}")
                idx = int(key)
                if idx > len(node):
                    raise ConfigError(
                        f"{name}: {'.'.join(path[:i])} has {len(node)} items; index {idx} skips some"
                    )
                if idx == len(node):
                    node.append(value)
                elif last:
                    node[idx] = value
                node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[key] = value
                else:
                    nxt = node.get(key)
                    if not isinstance(nxt, dict | list):
                        nxt = [] if path[i + 1].isdigit() else {}
                        node[key] = nxt
                node = node[key]
            else:
                raise ConfigError(f"{name}: {'.'.join(path[:i])} is a single value, not a section")
    return doc


def _format_validation_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {loc}: {msg}")
    return "invalid configuration:\n" + "\n".join(lines)


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the YAML file (if any), merge the environment, validate. Raises ConfigError."""
    doc: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {p}: {exc.strerror or exc}") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"{p}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections (http, sip, ...)")
        doc = loaded
    doc = apply_env_overrides(doc, os.environ if environ is None else environ)
    try:
        return Settings(**doc)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc)) from None
