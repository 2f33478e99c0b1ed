from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.sip_harness import Harness


@pytest.fixture
def h() -> Iterator[Harness]:
    """A user agent with a far end to drive it; no test may leave an internal error behind."""
    harness = Harness()
    yield harness
    assert harness.ua.stats.internal_errors == 0
