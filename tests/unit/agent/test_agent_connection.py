"""ReconnectBudget (pure) and AgentConnector's reconnect loop, with a fake clock and no sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from media.agent.connection import AgentConnector, AgentUnavailable, ReconnectBudget
from media.agent.endpoint import AgentEndpoint
from tests.support.clock import FakeClock, wait_until


def test_budget_backoff_then_spent() -> None:
    budget = ReconnectBudget(6)
    assert [budget.next_delay() for _ in range(7)] == [0.0, 0.2, 0.5, 1.0, 2.0, 2.0, None]
    assert budget.used == 6


def test_budget_is_restored_by_a_stable_connection_only() -> None:
    budget = ReconnectBudget(2)
    budget.next_delay()
    budget.next_delay()
    budget.connection_lasted(29.9)
    assert budget.next_delay() is None
    budget.connection_lasted(30.0)
    assert [budget.next_delay(), budget.next_delay(), budget.next_delay()] == [0.0, 0.2, None]


def test_no_budget_and_bad_budgets() -> None:
    assert ReconnectBudget(0).next_delay() is None
    with pytest.raises(ValueError):
        ReconnectBudget(-1)
    with pytest.raises(ValueError):
        ReconnectBudget(1, backoff=())


class FakeSocket:
    def __init__(self, opened_at: float) -> None:
        self.opened_at = opened_at


def connector(clock: FakeClock, attempts: int, outcomes: list[Any]) -> AgentConnector:
    """A connector whose attempts fail or succeed as ``outcomes`` say (an exception or a socket)."""
    endpoint = AgentEndpoint(id="agt", url="ws://127.0.0.1:9/a", reconnect_attempts=attempts)
    conn = AgentConnector(endpoint, call_id="call", subprotocol=None, clock=clock, sleep=clock.sleep)

    async def open_() -> Any:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    conn.open = open_  # type: ignore[method-assign]
    return conn


async def test_reconnect_waits_out_each_backoff_on_the_clock_it_was_given() -> None:
    clock = FakeClock()
    sock = FakeSocket(opened_at=0.0)
    outcomes: list[Any] = [AgentUnavailable("http_error", "HTTP 503"), AgentUnavailable("refused"), sock]
    conn = connector(clock, 3, outcomes)
    attempts: list[float] = []
    task = asyncio.ensure_future(conn.reconnect(lambda: attempts.append(clock.now)))
    # The first attempt goes at once; the second is counted, then waits 0.2 s.
    await wait_until(lambda: clock.sleeping == [0.2])
    assert len(outcomes) == 2 and attempts == [1000.0, 1000.0]
    clock.advance(0.1)
    assert clock.sleeping == [0.1] and len(outcomes) == 2
    clock.advance(0.1)
    await wait_until(lambda: clock.sleeping == [0.5])
    clock.advance(0.5)
    assert await task is sock
    assert attempts == pytest.approx([1000.0, 1000.0, 1000.2])
    assert conn.budget.used == 3


async def test_reconnect_returns_none_once_the_budget_is_spent() -> None:
    clock = FakeClock()
    conn = connector(clock, 1, [AgentUnavailable("timeout")])
    attempts: list[float] = []
    assert await conn.reconnect(lambda: attempts.append(clock.now)) is None
    assert attempts == [1000.0] and clock.sleeping == []


def test_a_drop_after_a_stable_connection_restores_the_budget() -> None:
    clock = FakeClock()
    conn = connector(clock, 2, [])
    conn.budget.next_delay()
    conn.budget.next_delay()
    conn.dropped(FakeSocket(opened_at=clock.now - 10.0))  # type: ignore[arg-type]
    assert conn.budget.used == 2
    conn.dropped(FakeSocket(opened_at=clock.now - 30.0))  # type: ignore[arg-type]
    assert conn.budget.used == 0
