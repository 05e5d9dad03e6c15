"""Live reload of a ``Coordination`` set: the files read again, SIGHUP, file watching."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import coordination
from coordination import ConfigError, Coordination, RuleSetError
from coordination.integration._reload import fingerprint
from coordination.testing import reset_default_coordination

pytestmark = pytest.mark.usefixtures("clean_environment")

RULES = "name: order\nrequired_fields: [id]\n"


def write_config(path: Path, rules: Path, body: str) -> None:
    path.write_text(f"base_delay: 0\njitter: none\nvalidation_rules_path: {rules}\n{body}")


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "order.yaml").write_text(RULES)
    config = tmp_path / "coordination.yaml"
    write_config(config, rules, "circuit_breaker_threshold: 1000\nmax_retries: 0\n")
    return config, rules


@pytest.fixture
def shop(files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Coordination]:
    monkeypatch.setenv("COORDINATION_CONFIG_FILE", str(files[0]))
    made = Coordination()
    yield made
    made.close()


def attempts_of(function: Callable[[], Any], counter: list[int]) -> int:
    before = len(counter)
    with contextlib.suppress(ConnectionError):
        function()
    return len(counter) - before


def failing(shop: Coordination, name: str = "inventory") -> tuple[Callable[[], Any], list[int]]:
    calls: list[int] = []

    @shop.handle_errors(operation_name=name)
    def reserve() -> None:
        calls.append(1)
        raise ConnectionError("down")

    return reserve, calls


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_the_file_and_its_operations_entry_reach_live_functions(
    shop: Coordination, files: tuple[Path, Path]
) -> None:
    config, rules = files
    reserve, calls = failing(shop)
    assert attempts_of(reserve, calls) == 1
    write_config(
        config,
        rules,
        "circuit_breaker_threshold: 1000\nmax_retries: 0\n"
        "operations:\n  inventory:\n    max_retries: 3\n",
    )
    shop.reload_config()
    assert attempts_of(reserve, calls) == 4
    assert shop.config.operations["inventory"]["max_retries"] == 3
    reloads = shop.error_handler.reload_snapshot()
    assert (reloads.reloads, reloads.errors) == (1, 0)


def test_a_file_that_fails_keeps_the_old_settings_logged_counted_and_shown(
    shop: Coordination, files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    config, _rules = files
    reserve, calls = failing(shop)
    before = shop.config
    config.write_text("max_retries: [not, a, number]\n")
    with pytest.raises(ConfigError):
        shop.reload_config()
    config.write_text("max_retries: 2\noperations:\n  inventory:\n    timeout: -1\n")
    with pytest.raises(ConfigError):
        shop.reload_config()
    assert shop.config is before
    assert shop.error_handler.config is before
    assert attempts_of(reserve, calls) == 1
    assert "configuration not reloaded" in caplog.text
    page = shop.status_page().snapshot()["config_reload"]
    assert page["errors"] == 2
    assert page["reloads"] == 0
    assert page["last"]["ok"] is False
    assert "timeout" in page["last"]["error"]
    metrics = shop.metrics_exporter().export_metrics()
    assert 'coordination_config_reload_errors_total{component="error_handler"} 2.0' in metrics
    assert 'coordination_config_reloads_total{component="error_handler"} 0.0' in metrics


def test_a_rule_file_that_does_not_compile_keeps_the_new_config_out_too(
    shop: Coordination, files: tuple[Path, Path]
) -> None:
    config, rules = files
    reserve, calls = failing(shop)
    write_config(config, rules, "circuit_breaker_threshold: 1000\nmax_retries: 5\n")
    (rules / "broken.yaml").write_text("name: broken\nrequired_fields: 7\n")
    with pytest.raises(RuleSetError):
        shop.reload_config()
    assert attempts_of(reserve, calls) == 1  # the handler's settings were not applied either
    assert shop.config.max_retries == 0
    (rules / "broken.yaml").unlink()
    (rules / "payment.yaml").write_text("name: payment\nrequired_fields: [amount]\n")
    shop.reload_config()
    assert attempts_of(reserve, calls) == 6
    assert shop.validator.rule_set_names == ["order", "payment"]


def test_a_set_made_from_a_mapping_keeps_it_on_top(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, rules = files
    monkeypatch.setenv("COORDINATION_CONFIG_FILE", str(config))
    shop = Coordination({"max_retries": 2})
    try:
        reserve, calls = failing(shop)
        write_config(config, rules, "circuit_breaker_threshold: 1000\nmax_retries: 4\n")
        shop.reload_config()
        assert attempts_of(reserve, calls) == 3
        assert shop.config.circuit_breaker_threshold == 1000
    finally:
        shop.close()


def test_reload_config_at_the_top_reloads_the_process_set(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, rules = files
    monkeypatch.setenv("COORDINATION_CONFIG_FILE", str(config))
    reset_default_coordination()
    try:
        calls: list[int] = []

        @coordination.handle_errors(operation_name="process.op")
        def call() -> None:
            calls.append(1)
            raise ConnectionError

        assert attempts_of(call, calls) == 1
        write_config(config, rules, "circuit_breaker_threshold: 1000\nmax_retries: 2\n")
        coordination.reload_config()
        assert attempts_of(call, calls) == 3
        from coordination._defaults import process_config

        assert process_config().max_retries == 2
    finally:
        reset_default_coordination()


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_reloads_when_asked_and_close_gives_the_handler_back(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, rules = files
    monkeypatch.setenv("COORDINATION_CONFIG_FILE", str(config))
    seen: list[int] = []
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: seen.append(signum))
    try:
        plain = Coordination()  # not opted in: SIGHUP stays the application's
        assert plain._reloader._sighup is False
        plain.close()
        shop = Coordination({"reload_on_sighup": True})
        reserve, calls = failing(shop)
        write_config(config, rules, "circuit_breaker_threshold: 1000\nmax_retries: 2\n")
        os.kill(os.getpid(), signal.SIGHUP)
        assert wait_for(lambda: shop.error_handler.reload_snapshot().reloads == 1)
        assert attempts_of(reserve, calls) == 3
        assert seen == []  # ours replaced the application's while installed
        shop.close()
        os.kill(os.getpid(), signal.SIGHUP)
        assert wait_for(lambda: seen == [signal.SIGHUP])
        assert shop.error_handler.reload_snapshot().reloads == 1
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_sighup_is_not_installed_outside_the_main_thread(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("COORDINATION_CONFIG_FILE", str(files[0]))
    made: list[Coordination] = []
    before = signal.getsignal(signal.SIGHUP)
    thread = threading.Thread(target=lambda: made.append(Coordination({"reload_on_sighup": True})))
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGHUP) is before
    assert "main thread" in caplog.text
    made[0].close()


def test_the_watcher_reloads_a_changed_file_once_and_ignores_a_touch(
    files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, rules = files
    monkeypatch.setenv("COORDINATION_CONFIG_FILE", str(config))
    shop = Coordination({"config_watch_interval": 0.05})
    try:
        reserve, calls = failing(shop)
        watcher = shop._reloader._watcher
        assert watcher is not None
        assert watcher.daemon
        stat = config.stat()
        os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched only
        time.sleep(0.4)
        assert shop.error_handler.reload_snapshot().reloads == 0
        write_config(config, rules, "circuit_breaker_threshold: 1000\nmax_retries: 3\n")
        assert wait_for(lambda: shop.error_handler.reload_snapshot().reloads == 1)
        assert attempts_of(reserve, calls) == 4
        (rules / "order.yaml").write_text("name: order\nrequired_fields: 7\n")  # broken
        assert wait_for(lambda: shop.error_handler.reload_snapshot().errors == 1)
        assert attempts_of(reserve, calls) == 4  # kept
        time.sleep(0.3)
        assert shop.error_handler.reload_snapshot().errors == 1  # once per change
    finally:
        shop.close()
    assert not watcher.is_alive()


def test_fingerprint_hashes_only_what_moved(tmp_path: Path) -> None:
    one = tmp_path / "one.yaml"
    one.write_text("a: 1\n")
    first = fingerprint([tmp_path])
    assert [entry[0] for entry in first] == [str(one)]
    one.write_text("a: 2\n")
    second = fingerprint([tmp_path], first)
    assert second[0][3] != first[0][3]
    assert fingerprint([tmp_path / "missing.yaml"]) == ()


def test_the_app_limit_of_a_middleware_built_from_the_set_follows_a_reload(
    files: tuple[Path, Path], shop: Coordination
) -> None:
    from coordination.integration import CoordinationMiddleware

    config, rules = files
    write_config(config, rules, "app_adaptive_concurrency: true\nmax_concurrency: 50\n")
    shop.reload_config()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = CoordinationMiddleware(app, coordination=shop)
    limit = middleware._app_limit
    assert limit is not None
    assert (limit.maximum, limit.algorithm_name) == (50, "gradient2")
    write_config(
        config,
        rules,
        "app_adaptive_concurrency: true\nmin_concurrency: 5\nmax_concurrency: 8\n"
        "concurrency_algorithm: aimd\n",
    )
    shop.reload_config()
    assert (limit.limit, limit.minimum, limit.maximum, limit.algorithm_name) == (5, 5, 8, "aimd")
    write_config(  # a bad one: the app limit keeps its settings with everything else
        config,
        rules,
        "app_adaptive_concurrency: true\nmin_concurrency: 9\nmax_concurrency: 8\n",
    )
    with pytest.raises(ConfigError, match="min_concurrency"):
        shop.reload_config()
    assert (limit.minimum, limit.maximum, limit.algorithm_name) == (5, 8, "aimd")
