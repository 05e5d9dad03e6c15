"""Live reload of a ``Coordination`` set: the config file and the rule files read again.

``ConfigReloader`` belongs to one set. ``reload()`` reads the configuration as the set was
made — the file (the path given, else ``COORDINATION_CONFIG_FILE``), the environment, and
the mapping the set was made from on top — checks it, prepares the error handler's new
settings (``error_handling._reload``), reloads the validator's rule files, and only then
applies the handler's settings: a file that fails to load or check, or a rule file that
does not compile, leaves everything as it was, and is logged and counted on the handler's
``reload_log`` (which the metrics and the status page read).

Two opt-in triggers call it: ``reload_on_sighup`` (the main thread's ``SIGHUP`` handler,
restored on ``close()``; the reload itself runs on a short-lived thread, never inside the
signal handler, which may have interrupted a thread holding a lock the reload needs) and
``config_watch_interval`` (a daemon thread comparing each watched file's mtime and size,
and, when those move, its SHA-256; a change is applied once it has held still for one
interval, so an editor's write in several steps is one reload).

The middleware's ``app_adaptive_concurrency`` limit, when the middleware was built from the
set (``coordination=``), follows a reload too (``follow_app_limit``): its algorithm, bounds
and wait are checked with the rest and retuned in place once the reload has applied (the
door's own ``config=`` keys still win). Turning the limit on or off needs a new middleware.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from .._config import CONFIG_FILE_VARIABLE, CoordinationConfig, resolve_config
from .._logging import component_logger, log_extra

if TYPE_CHECKING:  # loaded with the middleware's app limit, not by every set
    from ..error_handling._adaptive import AdaptiveLimiter, LimitSettings

__all__ = ["ConfigReloader", "Fingerprint", "fingerprint"]

_MAX_WATCHED = 1000  # rule files a watcher looks at (a directory of more is cut there)
_CHUNK = 1 << 16
Fingerprint = tuple[tuple[str, int, int, str], ...]  # (path, mtime_ns, size, sha256)


def fingerprint(paths: list[Path], previous: Fingerprint = ()) -> Fingerprint:
    """Each file's path, mtime, size and content hash; the hash is reused from
    ``previous`` while mtime and size are unchanged (a poll reads no file then)."""
    known = {entry[0]: entry for entry in previous}
    out = []
    for path in _files(paths):
        key = str(path)
        try:
            stat = path.stat()
        except OSError:
            continue  # gone meanwhile: its absence is the change
        old = known.get(key)
        if old is not None and old[1] == stat.st_mtime_ns and old[2] == stat.st_size:
            out.append(old)
            continue
        try:
            digest = hashlib.sha256()
            with path.open("rb") as file:
                while chunk := file.read(_CHUNK):
                    digest.update(chunk)
        except OSError:
            continue
        out.append((key, stat.st_mtime_ns, stat.st_size, digest.hexdigest()))
    return tuple(out)


def _files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            )
        elif path.exists():
            found.append(path)
    return found[:_MAX_WATCHED]


def _contents(print_: Fingerprint) -> tuple[tuple[str, str], ...]:
    return tuple((path, digest) for path, _, _, digest in print_)


class ConfigReloader:
    """The reloads of one set (``Coordination.reload_config``), and their triggers."""

    def __init__(
        self,
        coordination: Any,
        source: CoordinationConfig | Mapping[str, Any] | None,
        *,
        debug: bool = False,
    ) -> None:
        self._set = coordination
        # the mapping the set was made from goes on top at every reload; a set made from a
        # CoordinationConfig is read again from the file and the environment
        self._overrides = dict(source) if isinstance(source, Mapping) else {}
        self._path: Path | None = None
        self._logger = component_logger("reload", debug=debug)
        self._lock = threading.Lock()  # one reload at a time
        self._previous_handler: Any = None
        self._sighup = False
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._interval: float | None = None
        # the middleware's app limits built from this set, with each door's own config=
        self._app_limits: weakref.WeakKeyDictionary[AdaptiveLimiter, Any] = (
            weakref.WeakKeyDictionary()
        )

    def follow_app_limit(self, limiter: AdaptiveLimiter, door_config: Any) -> None:
        """Retune ``limiter`` (a middleware's ``app_adaptive_concurrency``) at each reload,
        to the set's new settings under the door's own ``door_config`` (None: none)."""
        self._app_limits[limiter] = door_config

    # --- reloading ------------------------------------------------------------------------

    def reload(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        source: str = "",
        unless: threading.Event | None = None,
    ) -> None:
        """Read the configuration and the rule files again and apply them, or raise (a
        ``ConfigError`` or ``RuleSetError``) with everything left as it was. ``unless``:
        a watcher's stop signal; set by the time the lock is ours, nothing is done.
        ``path`` is kept for later reloads only once this one succeeded: a mistyped path
        must not leave every later reload (and the watcher) on a file that is not there."""
        handler = self._set.error_handler
        shown = source or "reload_config()"
        with self._lock:
            if unless is not None and unless.is_set():
                return  # a watcher stopped by the reload it waited for: that one is newer
            read_from = self._path if path is None else Path(path)
            try:
                config = self._read(read_from)
            except Exception as exc:  # the file: unreadable, bad YAML, a value that fails
                handler.reload_log.failed(shown, exc)
                self._logger.error(
                    "configuration not reloaded (%s): %s",
                    shown,
                    exc,
                    extra=log_extra(source=shown, error_type=type(exc).__name__),
                )
                raise
            limits: list[tuple[AdaptiveLimiter, LimitSettings]] = []

            def before_apply() -> None:  # checks first: the rules apply as they reload
                limits.extend(self._app_limit_settings(config))
                self._reload_rules(config)

            handler.reconfigure(config, source=shown, before_apply=before_apply)
            for limiter, settings in limits:
                limiter.retune(settings)
            self._path = read_from
            self._set.config = config
            self._after_reload(config)

    def _app_limit_settings(
        self, config: CoordinationConfig
    ) -> list[tuple[AdaptiveLimiter, LimitSettings]]:
        """Each followed app limit's new settings, checked (a ``ConfigError`` otherwise)."""
        if not self._app_limits:
            return []
        from ..error_handling._adaptive import check_limit_settings, limit_settings
        from ._components import door_config  # integration's own: loaded by the doors

        out = []
        for limiter, door in list(self._app_limits.items()):
            door_cfg, _ = door_config(config, door)
            if not door_cfg.app_adaptive_concurrency:
                continue  # switched off: the middleware keeps its limit until it is rebuilt
            settings = limit_settings(door_cfg)
            check_limit_settings(settings, "app_adaptive_concurrency")
            out.append((limiter, settings))
        return out

    def _read(self, path: Path | None) -> CoordinationConfig:
        if path is not None:
            return CoordinationConfig.load(path, **self._overrides)
        return resolve_config(self._overrides)

    def _reload_rules(self, config: CoordinationConfig) -> None:
        validator = self._set.validator
        reload_rules: Callable[[], object] | None = getattr(validator, "reload_rules", None)
        if reload_rules is None:
            return
        old_config = getattr(validator, "config", None)
        rules_path = getattr(validator, "rules_path", None)
        moved = (
            isinstance(old_config, CoordinationConfig)
            and rules_path == Path(old_config.validation_rules_path)
            and config.validation_rules_path != old_config.validation_rules_path
        )
        if moved:  # the set's rules follow the setting when they came from it
            validator.rules_path = Path(config.validation_rules_path)
        try:
            reload_rules()
        except Exception:
            if moved:
                validator.rules_path = rules_path
            raise

    def _after_reload(self, config: CoordinationConfig) -> None:
        """Triggers follow the new settings: SIGHUP on or off, the watch interval."""
        if config.reload_on_sighup and not self._sighup:
            self.install_sighup()
        elif not config.reload_on_sighup and self._sighup:
            self.restore_sighup()
        self.watch(config.config_watch_interval)

    # --- what is watched ------------------------------------------------------------------

    def watched_paths(self) -> list[Path]:
        """The config file (when one is read) and the validator's rule files."""
        paths: list[Path] = []
        path = self._path
        if path is None and os.environ.get(CONFIG_FILE_VARIABLE):
            path = Path(os.environ[CONFIG_FILE_VARIABLE])
        if path is not None:
            paths.append(path)
        rules = getattr(self._set.validator, "rules_path", None)
        if isinstance(rules, Path):
            paths.append(rules)
        return paths

    # --- SIGHUP ---------------------------------------------------------------------------

    def install_sighup(self) -> bool:
        """Reload on ``SIGHUP`` (only from the main thread, where Python runs signal
        handlers; elsewhere a warning and False). The handler it replaces is kept and put
        back by ``restore_sighup()``."""
        sighup = getattr(signal, "SIGHUP", None)
        if sighup is None:
            self._logger.warning(
                "reload_on_sighup: this platform has no SIGHUP", extra=log_extra(source="SIGHUP")
            )
            return False
        if threading.current_thread() is not threading.main_thread():
            self._logger.warning(
                "reload_on_sighup: the set was made outside the main thread, where a "
                "signal handler cannot be installed; call reload_config() instead",
                extra=log_extra(source="SIGHUP"),
            )
            return False
        self._previous_handler = signal.signal(sighup, self._on_sighup)
        self._sighup = True
        return True

    def restore_sighup(self) -> None:
        """Put back the ``SIGHUP`` handler ``install_sighup`` replaced."""
        if not self._sighup:
            return
        self._sighup = False
        if threading.current_thread() is threading.main_thread():
            previous = self._previous_handler
            signal.signal(signal.SIGHUP, signal.SIG_DFL if previous is None else previous)
        else:  # cannot restore from here: the handler stays, doing nothing
            self._logger.warning(
                "SIGHUP handler not restored: close() outside the main thread",
                extra=log_extra(source="SIGHUP"),
            )

    def _on_sighup(self, signum: int, frame: FrameType | None) -> None:
        if not self._sighup:
            return
        threading.Thread(target=self._quiet_reload, args=("SIGHUP",), daemon=True).start()

    def _quiet_reload(self, source: str, unless: threading.Event | None = None) -> None:
        # a failure is logged and counted by reload(); the process goes on
        with contextlib.suppress(Exception):
            self.reload(source=source, unless=unless)

    # --- file watching --------------------------------------------------------------------

    def watch(self, interval: float | None) -> None:
        """Poll the watched files every ``interval`` seconds (``None``: stop watching)."""
        running = self._watcher
        if running is not None and (interval is None or self._interval != interval):
            # Told to stop, not joined: this runs under the reload lock, which the old
            # watcher may be waiting for (joining it stalled the reload for 5 s); it ends
            # at its next wake, and a reload it was waiting for is skipped (``unless``).
            self._stop.set()
            self._watcher = None
        if interval is None or self._watcher is not None:
            return
        self._interval = interval
        self._stop = stop = threading.Event()
        thread = threading.Thread(
            target=self._watch, args=(interval, stop), name="coordination-config-watch", daemon=True
        )
        self._watcher = thread
        thread.start()

    def _watch(self, interval: float, stop: threading.Event) -> None:
        try:
            current = fingerprint(self.watched_paths())
        except Exception:  # unreadable now: every file counts as changed once readable
            self._logger.exception(
                "config watch: the files could not be read",
                extra=log_extra(source="watch", watch_interval=interval),
            )
            current = ()
        pending: Fingerprint | None = None
        while not stop.wait(interval):
            try:
                seen = fingerprint(self.watched_paths(), pending or current)
            except Exception:  # a watcher never dies of a file system hiccup
                self._logger.exception(
                    "config watch: the files could not be read",
                    extra=log_extra(source="watch", watch_interval=interval),
                )
                continue
            if _contents(seen) == _contents(current):
                pending = None
                current = seen
                continue
            if pending is None or _contents(seen) != _contents(pending):
                pending = seen  # changed: wait one interval for it to hold still
                continue
            current, pending = seen, None
            if stop.is_set():
                return
            self._quiet_reload("file change", unless=stop)

    def close(self) -> None:
        """Stop watching and give SIGHUP back."""
        self.restore_sighup()
        self._stop.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout=5)
