"""Configuration: YAML, environment overrides, and errors that name the key."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from gateway.config import AgentConfig, ConfigError, Settings, SipConfig, api_key_hash, load_settings
from media.agent.endpoint import AgentEndpoint

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "gateway.example.yaml"


def test_example_config_is_complete_and_valid() -> None:
    s = load_settings(EXAMPLE, environ={})
    assert s.http.port == 8080
    assert s.sip.transports == ["udp", "tcp"]
    assert s.rtp.port_min == 20000 and s.rtp.port_max == 20999
    assert s.database.url.startswith("sqlite+aiosqlite")
    assert s.storage.backend == "local" and s.storage.s3.url_mode == "presigned"
    assert s.accounts[0].id == "acct_demo"
    assert s.agents[0].protocol == "orbit-voice"
    assert s.trunks[0].target.port == 5070 and s.trunks[0].target.transport == "udp"
    assert s.limits.max_duration_ceiling == 14400
    assert s.webhooks.retry_schedule_seconds == [0, 60, 300, 1800, 7200, 28800, 86400]
    # Every section of the model appears in the example file.
    text = EXAMPLE.read_text()
    for section in Settings.model_fields:
        assert f"\n{section}:" in text, section


def test_agent_config_builds_the_endpoint_the_bridge_takes() -> None:
    agent = AgentConfig(
        id="agt_1",
        url="wss://agent.example.com/voice",
        protocol="twilio",
        sample_rate=8000,
        headers={"Authorization": "Bearer k"},
        connect_timeout_seconds=3.5,
        on_failure="continue",
        reconnect_attempts=4,
        stop_grace_seconds=0.5,
    )
    assert agent.endpoint() == AgentEndpoint(
        id="agt_1",
        url="wss://agent.example.com/voice",
        protocol="twilio",
        sample_rate=8000,
        headers={"Authorization": "Bearer k"},
        connect_timeout_seconds=3.5,
        reconnect_attempts=4,
        stop_grace_seconds=0.5,
    )


README = ROOT / "README.md"


def _shown(default: object) -> str:
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return f"`{default}`" if isinstance(default, str) else str(default)


def test_sip_keys_are_in_the_example_and_its_limits_in_the_readme() -> None:
    sip = EXAMPLE.read_text().split("\nsip:\n", 1)[1].split("\n\n", 1)[0]
    for name in SipConfig.model_fields:
        assert f"\n  {name}:" in "\n" + sip, name
    limits = README.read_text().split("\n## Limits\n", 1)[1].split("\n## ", 1)[0]
    for name, field in SipConfig.model_fields.items():
        if name.startswith("tcp_") or name == "max_message_bytes":
            [row] = [line for line in limits.splitlines() if line.startswith(f"| `sip.{name}`")]
            assert f"| {_shown(field.default)} |" in row, (name, row)
            line = next(line for line in sip.splitlines() if line.startswith(f"  {name}:"))
            assert "#" in line, f"sip.{name} has no comment in the example configuration"


def test_env_overrides_nest_and_index_lists() -> None:
    s = load_settings(
        EXAMPLE,
        environ={
            "GATEWAY__HTTP__PORT": "9090",
            "GATEWAY__TRUNKS__0__PASSWORD": "s3cret",
            "GATEWAY__TRUNKS__0__USERNAME": "gw",
            "GATEWAY__SIP__TRANSPORTS": "[udp]",
            "GATEWAY__WEBHOOKS__ALLOW_PRIVATE_TARGETS": "true",
            "GATEWAY__ACCOUNTS__0__WEBHOOK_SECRET": "whsec_from_env",
            "OTHER__HTTP__PORT": "1",
        },
    )
    assert s.http.port == 9090
    assert s.trunks[0].password is not None and s.trunks[0].password.get_secret_value() == "s3cret"
    assert s.sip.transports == ["udp"]
    assert s.webhooks.allow_private_targets is True
    assert s.accounts[0].webhook_secret is not None
    assert s.accounts[0].webhook_secret.get_secret_value() == "whsec_from_env"
    assert "s3cret" not in repr(s)  # secrets never show in reprs or logs


def test_env_can_append_a_list_item() -> None:
    s = load_settings(
        EXAMPLE,
        environ={"GATEWAY__TRUNKS__1__ID": "backup", "GATEWAY__TRUNKS__1__URI": "sip:10.0.0.1;transport=tcp"},
    )
    assert [t.id for t in s.trunks] == ["main", "backup"]
    assert s.trunks[1].target.transport == "tcp"


def test_env_alone_without_file() -> None:
    s = load_settings(None, environ={"GATEWAY__HTTP__PORT": "1234"})
    assert s.http.port == 1234 and s.accounts == []


@pytest.mark.parametrize(
    ("yaml_text", "env", "expected"),
    [
        ("http: {port: 99999}", {}, "http.port"),
        ("http: {prot: 1}", {}, "http.prot: unknown key"),
        ("nonsense: 1", {}, "nonsense: unknown key"),
        ("trunks: [{id: a, uri: 'http://x'}]", {}, "trunks.0.uri: must be a SIP URI"),
        ("trunks: [{id: a, uri: 'sip:x;transport=tls'}]", {}, "transport 'tls' is not supported"),
        ("trunks: [{id: a, uri: 'sip:x', username: u}]", {}, "username and password go together"),
        ("accounts: [{id: a, api_keys: ['short']}]", {}, "at least 16 characters"),
        ("accounts: [{id: a, api_keys: ['sha256:zz']}]", {}, "64 lowercase hex"),
        ("accounts: [{id: a, api_keys: ['dv_test_sk_0123456789ab'], numbers: ['+12025551234'], default_from: '+12025559999'}]",
         {}, "default_from +12025559999 is not one of the account's numbers"),
        ("accounts: [{id: a, api_keys: ['dv_test_sk_0123456789ab'], numbers: ['12025551234']}]", {},
         "accounts.0.numbers.0"),
        ("agents: [{id: a, url: 'http://x'}]", {}, "agents.0.url: must be a ws:// or wss:// URL"),
        ("agents: [{id: a, url: 'ws://x', protocol: twilio, sample_rate: 16000}]", {}, "8 kHz mu-law"),
        ("rtp: {port_min: 30000, port_max: 30000}", {}, "port_max must be greater"),
        ("database: {url: 'mysql://x'}", {}, "database.url"),
        ("", {"GATEWAY__HTTP__PORT": "abc"}, "http.port"),
        ("trunks: [{id: a, uri: 'sip:x'}, {id: a, uri: 'sip:y'}]", {}, "trunks: id 'a' appears twice"),
        ("", {"GATEWAY__TRUNKS__3__ID": "x"}, "index 3 skips some"),
        ("- a\n- b", {}, "top level must be a mapping"),
        ("http: {port: [", {}, "not valid YAML at line"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, yaml_text: str, env: dict[str, str], expected: str) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ConfigError) as exc:
        load_settings(p, environ=env)
    assert expected in str(exc.value)


def test_duplicate_key_across_accounts(tmp_path: Path) -> None:
    key = "dv_test_sk_0123456789ab"
    p = tmp_path / "c.yaml"
    p.write_text(
        f"accounts: [{{id: a, api_keys: ['{key}']}}, "
        f"{{id: b, api_keys: ['sha256:{hashlib.sha256(key.encode()).hexdigest()}']}}]"
    )
    with pytest.raises(ConfigError, match="also a key of 'a'"):
        load_settings(p, environ={})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_settings("/nonexistent/gateway.yaml", environ={})


def test_key_hash_forms_agree() -> None:
    key = "dv_live_sk_abcdefabcdef1234"
    assert api_key_hash(key) == api_key_hash("sha256:" + hashlib.sha256(key.encode()).hexdigest())


def test_route_picks_longest_prefix() -> None:
    s = Settings(
        trunks=[
            {"id": "all", "uri": "sip:a", "prefixes": ["+"]},
            {"id": "us", "uri": "sip:b", "prefixes": ["+1"]},
            {"id": "nyc", "uri": "sip:c", "prefixes": ["+1212", "+1646"]},
        ]
    )
    assert s.route("+12125550000").id == "nyc"  # type: ignore[union-attr]
    assert s.route("+14155550000").id == "us"  # type: ignore[union-attr]
    assert s.route("+442071234567").id == "all"  # type: ignore[union-attr]


def test_cli_reports_bad_config_without_traceback(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("http: {port: 99999}\n")
    r = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(p)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert "http.port" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_help_explains_options() -> None:
    r = subprocess.run([sys.executable, "-m", "gateway", "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for opt in ("--config", "--host", "--port", "GATEWAY__"):
        assert opt in r.stdout


def test_cli_hash_key() -> None:
    r = subprocess.run([sys.executable, "-m", "gateway", "hash-key", "dv_test_sk_x"], capture_output=True, text=True,
                       timeout=60)
    assert r.stdout.strip() == "sha256:" + hashlib.sha256(b"dv_test_sk_x").hexdigest()


def _missing_keys(model: type[BaseModel], doc: object, path: str) -> list[str]:
    """Keys of `model` (recursively through sections and the first item of lists) not in `doc`."""
    if not isinstance(doc, dict):
        return [path or "(top level)"]
    missing: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        where = f"{path}.{key}" if path else key
        if key not in doc:
            missing.append(where)
            continue
        kind = field.annotation
        inner = typing.get_args(kind)[0] if typing.get_origin(kind) is list else kind
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            value = doc[key]
            if typing.get_origin(kind) is list:
                missing += _missing_keys(inner, value[0], f"{where}.0") if value else [f"{where}.0"]
            else:
                missing += _missing_keys(inner, value, where)
    return missing


def test_the_example_config_lists_every_key() -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    assert _missing_keys(Settings, doc, "") == []
