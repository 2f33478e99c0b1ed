"""AgentEndpoint: the data plane's description of an agent."""

from __future__ import annotations

from typing import Any

import pytest

from media.agent.endpoint import AgentEndpoint


def test_defaults_and_a_frozen_copy_of_the_headers() -> None:
    headers = {"Authorization": "Bearer a"}
    endpoint = AgentEndpoint(id="agt", url="ws://127.0.0.1:9/a", headers=headers)
    headers["Authorization"] = "Bearer b"
    assert endpoint.headers == {"Authorization": "Bearer a"}
    with pytest.raises(TypeError):
        endpoint.headers["X"] = "y"  # type: ignore[index]
    assert (endpoint.protocol, endpoint.sample_rate) == ("orbit-voice", 16000)
    assert (endpoint.connect_timeout_seconds, endpoint.reconnect_attempts, endpoint.stop_grace_seconds) == (
        5.0,
        2,
        1.0,
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"protocol": "sip"}, "unknown agent protocol"),
        ({"protocol": "twilio", "sample_rate": 16000}, "8 kHz"),
        ({"connect_timeout_seconds": 0}, "connect_timeout_seconds"),
        ({"reconnect_attempts": -1}, "must not be negative"),
        ({"stop_grace_seconds": -0.1}, "must not be negative"),
    ],
)
def test_values_the_bridge_cannot_use_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AgentEndpoint(id="agt", url="ws://127.0.0.1:9/a", **fields)
