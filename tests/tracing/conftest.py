"""The tracing tests' shared fixture: ``recorded``, the spans a test's doors made."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .doors import Recorded, recording


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    """The spans recorded during the test, by the real SDK's in-memory exporter."""
    with recording() as spans:
        yield spans
