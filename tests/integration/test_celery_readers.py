"""A coordinated task's dead-letter store on /metrics and the status page, as an event
processor's is: ``coordination_dead_letters{store,namespace,component}`` and the Events
section, read when a reader asks (the store is not even opened before), for a SQLite file
and for a PostgreSQL namespace. Eager Celery: no broker (the real worker's readers are in
test_celery_kill.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

celery = pytest.importorskip("celery")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from coordination import Coordination  # noqa: E402
from coordination import _events_snapshot as events_module  # noqa: E402
from coordination.integration.celery import coordinated_task  # noqa: E402
from coordination.observability import CoordinationMetricsExporter, StatusPage  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read counts again (the one-second sharing is tested with the processors)."""
    monkeypatch.setattr(events_module, "STORE_READ_TTL", 0.0)


@pytest.fixture
def app() -> Iterator[Any]:
    application = celery.Celery("reader_tests", broker="memory://", backend="cache+memory://")
    application.conf.task_always_eager = True
    yield application
    application.close()


def gauges(coordination: Coordination) -> dict[tuple[str, str, str], float]:
    text = CoordinationMetricsExporter(coordination=coordination).export_metrics()
    return {
        (s.labels["store"], s.labels["namespace"], s.labels["component"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "coordination_dead_letters"
    }


def stores(coordination: Coordination) -> list[dict[str, Any]]:
    shown: list[dict[str, Any]] = StatusPage(coordination=coordination).snapshot()["events"][
        "stores"
    ]
    return shown


def make_tasks(app: Any, coordination: Coordination) -> tuple[Any, Any]:
    @coordinated_task(app, error_config={"max_retries": 0}, coordination=coordination)
    def charge(order_id: str) -> str:
        raise ConnectionError(f"payments unreachable for {order_id}")

    @coordinated_task(app, {"fields": {"key": {"type": "string"}}}, coordination=coordination)
    def ship(key: str) -> str:
        return key

    return charge, ship


def check_counts(app: Any, coordination: Coordination, kind: str, namespace: str) -> None:
    charge, ship = make_tasks(app, coordination)
    try:
        assert charge.coordination._store is None  # nothing read yet: nothing opened
        assert gauges(coordination) == {
            (kind, namespace, "events"): 0.0,
            (kind, namespace, "events_2"): 0.0,
        }
        charge.apply(("o-1",))
        charge.apply(("o-2",))
        ship.apply((3,))  # invalid: dead-lettered, never run
        # each task counts its own letters, though both share one store
        assert gauges(coordination) == {
            (kind, namespace, "events"): 2.0,
            (kind, namespace, "events_2"): 1.0,
        }
        shown = stores(coordination)
        assert [
            (s["component"], s["kind"], s["namespace"], s["dead_letters"], s["available"])
            for s in shown
        ] == [
            ("events", kind, namespace, 2, True),
            ("events_2", kind, namespace, 1, True),
        ]
    finally:
        for task in (charge, ship):
            for letter in task.coordination.list_dead_letters():
                task.coordination.dead_letters.delete(letter.id)
            task.coordination.close()
    assert gauges(coordination) == {}  # a closed task is no longer read


def test_sqlite_store_counts_on_metrics_and_status_page(app: Any, tmp_path: Path) -> None:
    coordination = Coordination(
        config={"dead_letter_path": str(tmp_path / "letters.db"), "max_retries": 0}
    )
    check_counts(app, coordination, "sqlite", "default")


@pytest.mark.postgres
def test_postgres_store_counts_its_namespace(app: Any, postgres_url: str, unique_name: str) -> None:
    from coordination.integration._dead_letter_stores import open_dead_letter_store

    other = open_dead_letter_store(postgres_url, unique_name + "_other")
    try:  # another service's letter in the same database: not this one's count
        other.dead_letter(
            None,
            {"args": ["x"], "kwargs": {}},
            "test_celery_readers.charge",
            reason="failed",
            error=ConnectionError("x"),
            attempts=1,
            key=None,
        )
        coordination = Coordination(
            config={
                "dead_letter_path": postgres_url,
                "dead_letter_namespace": unique_name,
                "max_retries": 0,
            }
        )
        check_counts(app, coordination, "postgresql", unique_name)
    finally:
        other.purge()
        other.close()


def test_a_store_that_cannot_open_shows_unavailable(app: Any, tmp_path: Path) -> None:
    coordination = Coordination(
        config={"dead_letter_path": str(tmp_path / "missing" / "dir" / "x.db")}
    )
    (tmp_path / "missing").write_text("a file where the directory should be")
    charge, _ = make_tasks(app, coordination)
    try:
        (shown, _second) = stores(coordination)
        assert (shown["available"], shown["dead_letters"]) == (False, None)
        assert shown["error"]
        assert gauges(coordination) == {}  # no count shown for a store that cannot answer
    finally:
        for task in (charge, _):
            task.coordination.close()
