"""Live reload under hostile use: reloads from many threads, from an event loop, a
watcher racing a reload, and a config file replaced by things that are not one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordination import ConfigError, Coordination

pytestmark = pytest.mark.usefixtures("clean_environment")


def body(rules: Path, extra: str) -> str:
    return (
        f"base_delay: 0\njitter: none\nvalidation_rules_path: {rules}\n"
        f"circuit_breaker_threshold: 1000\n{extra}"
    )


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "order.yaml").write_text("name: order\nrequired_fields: [id]\n")
    config = tmp_path / "coordination.yaml"
    config.write_text(body(rules, "max_retries: 0\n"))
    return config, rules


@pytest.fixture
def shop(files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Coordination]:
    monkeypatch.setenv("COORDINATION_CONFIG_FILE", str(files[0]))
    made = Coordination()
    yield made
    made.close()


def attempts(shop: Coordination) -> int:
    calls: list[int] = []

    @shop.handle_errors(operation_name="inventory")
    def reserve() -> None:
        calls.append(1)
        raise ConnectionError("down")

    with contextlib.suppress(ConnectionError):
        reserve()
    return len(calls)


def test_reloads_from_many_threads_at_once_each_apply_whole(
    shop: Coordination, files: tuple[Path, Path]
) -> None:
    config, rules = files
    config.write_text(body(rules, "max_retries: 2\n"))
    errors: list[BaseException] = []

    def reload() -> None:
        try:
            shop.reload_config()
        except BaseException as exc:  # collected: the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=reload) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert shop.error_handler.reload_log.snapshot().reloads == 16
    assert attempts(shop) == 3


async def test_reload_config_from_an_event_loop_does_not_hold_it(
    shop: Coordination, files: tuple[Path, Path]
) -> None:
    config, rules = files

    @shop.handle_errors(operation_name="lookup", timeout=5)
    async def lookup() -> int:
        await asyncio.sleep(0.1)
        return 1

    running = asyncio.create_task(lookup())
    await asyncio.sleep(0.01)
    config.write_text(body(rules, "max_retries: 1\ntimeout: 1\n"))
    began = time.monotonic()
    shop.reload_config()
    assert time.monotonic() - began < 0.5  # it does not wait for the call in flight
    assert await running == 1
    assert attempts(shop) == 2


def test_a_reload_that_moves_the_watch_interval_is_not_stalled_by_the_watcher(
    shop: Coordination, files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, rules = files
    config.write_text(body(rules, "config_watch_interval: 0.02\n"))
    shop.reload_config()
    time.sleep(0.1)  # the watcher has its first look
    reloader = shop._reloader
    read = reloader._read
    watcher_waited = threading.Event()

    def slow_read(path: Path | None) -> object:
        if threading.current_thread() is threading.main_thread():
            # the watcher sees the file change meanwhile and waits for the reload's lock
            watcher_waited.wait(2)
        return read(path)

    monkeypatch.setattr(reloader, "_read", slow_read)
    original = reloader.reload

    def spy(*args: object, **kwargs: object) -> None:
        if threading.current_thread().name == "coordination-config-watch":
            watcher_waited.set()
        original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reloader, "reload", spy)
    config.write_text(body(rules, "config_watch_interval: 0.03\nmax_retries: 1\n"))
    began = time.monotonic()
    shop.reload_config()
    took = time.monotonic() - began
    assert watcher_waited.is_set()
    assert took < 2.5  # joining the waiting watcher stalled it 5 s
    assert attempts(shop) == 2


@pytest.mark.parametrize("replace", ["directory", "symlink loop", "huge", "not utf-8", "deleted"])
def test_a_watched_file_replaced_by_what_is_no_config_keeps_the_old_settings(
    shop: Coordination, files: tuple[Path, Path], replace: str
) -> None:
    config, rules = files
    config.write_text(body(rules, "max_retries: 2\nconfig_watch_interval: 0.02\n"))
    shop.reload_config()
    time.sleep(0.1)  # the new watcher has had its first look
    config.unlink()
    if replace == "directory":
        config.mkdir()
    elif replace == "symlink loop":
        os.symlink(config, config)
    elif replace == "huge":
        config.write_bytes(b"max_retries: 0\n" + b"#" * (5 << 20))
    elif replace == "not utf-8":
        config.write_bytes(b"max_retries: \xff\n")
    log = shop.error_handler.reload_log
    deadline = time.monotonic() + 5
    while log.snapshot().errors == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.snapshot().errors >= 1
    assert attempts(shop) == 3  # the old settings hold
    with pytest.raises(ConfigError):
        shop.reload_config()
    watcher = [t for t in threading.enumerate() if t.name == "coordination-config-watch"]
    assert watcher
    assert watcher[0].is_alive()


def test_a_mistyped_path_is_not_kept_for_later_reloads(
    shop: Coordination, files: tuple[Path, Path]
) -> None:
    config, rules = files
    with pytest.raises(ConfigError, match="does not exist"):
        shop.reload_config(config.with_name("coordinaton.yaml"))
    config.write_text(body(rules, "max_retries: 2\n"))
    shop.reload_config()  # the set's own file still: was "coordinaton.yaml does not exist"
    assert attempts(shop) == 3
    assert shop._reloader.watched_paths()[0] == config


def test_a_file_that_clashes_with_an_operations_code_names_the_operation(
    shop: Coordination, files: tuple[Path, Path]
) -> None:
    config, rules = files

    @shop.handle_errors(operation_name="search", adaptive_concurrency=True, min_concurrency=5)
    def search() -> int:
        return 1

    assert search() == 1
    config.write_text(body(rules, "max_concurrency: 3\nmax_retries: 2\n"))
    with pytest.raises(
        ConfigError,
        match=r"min_concurrency = 5 from keyword argument: above max_concurrency = 3 .*"
        r"\(operation 'search', with the options its code gives\)",
    ):
        shop.reload_config()
    assert attempts(shop) == 1  # nothing changed: max_retries is still 0
    assert search() == 1
