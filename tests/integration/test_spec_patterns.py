"""The spec's four usage examples, as written, with only the imports changed to the
library's shipped classes (the spec defined them inline)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coordination.integration import CoordinationEventProcessor

PATTERN_1 = """
from coordination.integration import CoordinationServiceWrapper

# Usage Example
class LegacyUserService:
    def create_user(self, user_data):
        # Existing business logic
        return {"user_id": "123", "status": "created"}

# Wrap the legacy service
legacy_service = LegacyUserService()
wrapped_service = CoordinationServiceWrapper(legacy_service)

# Wrap specific methods
wrapped_create_user = wrapped_service.wrap_method(
    "create_user",
    validation_rules={"required_fields": ["name", "email"]},
    error_config={"max_retries": 3, "error_severity": "MEDIUM"}
)

# Use wrapped method
result = wrapped_create_user({"name": "John", "email": "john@example.com"})
"""

PATTERN_2 = """
from coordination.integration import coordinate_operation

# Usage Example
@coordinate_operation(
    validation_rules={"required_fields": ["user_id", "data"]},
    error_config={"max_retries": 3, "error_severity": "MEDIUM"},
    operation_name="update_user_profile"
)
def update_user_profile(user_id, data):
    # Existing business logic
    return {"status": "updated", "user_id": user_id}
"""

PATTERN_3 = """
from coordination.integration import CoordinationMiddleware

# Usage with Flask
from flask import Flask

app = Flask(__name__)

# Add coordination middleware
app.wsgi_app = CoordinationMiddleware(
    app.wsgi_app,
    config={
        'enable_validation': True,
        'enable_performance_monitoring': True
    }
)

@app.route('/api/users', methods=['POST'])
def create_user():
    # Business logic here
    return {"status": "success"}
"""

PATTERN_4 = """
from coordination.integration import CoordinationEventProcessor

# Usage Example
event_processor = CoordinationEventProcessor()

# Process events
events = [
    {"user_id": "123", "action": "login", "timestamp": "2024-01-01T12:00:00Z"},
    {"user_id": "456", "action": "logout", "timestamp": "2024-01-01T12:05:00Z"}
]

for event in events:
    try:
        result = event_processor.process_event(event, "user_activity")
        print(f"✅ Event processed: {result}")
    except Exception as e:
        print(f"❌ Event processing failed: {e}")
"""


@pytest.fixture
def run(clean_environment: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.chdir(tmp_path)  # the event processor's default dead-letter file lands here

    namespaces: list[dict[str, Any]] = []

    def execute(source: str) -> dict[str, Any]:
        namespace: dict[str, Any] = {"__name__": "spec_example"}
        namespaces.append(namespace)
        exec(compile(textwrap.dedent(source), "<spec example>", "exec"), namespace)
        return namespace

    yield execute
    # The spec's code never closes what it makes; the test closes the event processors
    # (and so their dead-letter journals' sqlite connections) on its behalf.
    for namespace in namespaces:
        for value in namespace.values():
            if isinstance(value, CoordinationEventProcessor):
                value.close()


def test_pattern_1_service_wrapper(run: Any) -> None:
    namespace = run(PATTERN_1)
    assert namespace["result"] == {"user_id": "123", "status": "created"}
    with pytest.raises(ValueError, match="email"):
        namespace["wrapped_create_user"]({"name": "John"})


def test_pattern_2_decorator(run: Any) -> None:
    update = run(PATTERN_2)["update_user_profile"]
    assert update("42", {"name": "Ann"}) == {"status": "updated", "user_id": "42"}
    with pytest.raises(ValueError, match="data"):
        update("42", None)


def test_pattern_3_flask_middleware(run: Any) -> None:
    namespace = run(PATTERN_3)
    app = namespace["app"]
    response = app.test_client().post("/api/users", json={"name": "Ann"}, buffered=True)
    assert response.json == {"status": "success"}
    status = app.wsgi_app.get_middleware_status()
    assert status["middleware"]["status_codes"] == {200: 1}
    assert status["performance"]["operations"]["POST /api/users"]["count"] == 1


def test_pattern_4_event_processor(run: Any, capsys: pytest.CaptureFixture[str]) -> None:
    namespace = run(PATTERN_4)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "✅ Event processed: {'status': 'processed', 'event_type': 'user_activity'}",
        "✅ Event processed: {'status': 'processed', 'event_type': 'user_activity'}",
    ]
    processor = namespace["event_processor"]
    # By default the journal lives in the platform's state directory, not the cwd.
    journal = Path(processor.dead_letters.path)
    assert journal == Path(os.environ["XDG_STATE_HOME"], "coordination", "dead-letters.sqlite3")
    processor.close()
