"""``CoordinationServiceWrapper``: validation, error handling and timing for an existing
service's methods, without touching the service.

>>> class Users:
...     def create_user(self, user_data):
...         return {"user_id": "123", "status": "created"}
>>> create = CoordinationServiceWrapper(Users()).wrap_method(
...     "create_user", validation_rules={"required_fields": ["name"]})
>>> create({"name": "John"})["status"]
'created'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._config import CoordinationConfig
from .._defaults import ComponentSet
from ._components import CoordinatedDoor, ErrorHandlerLike, MonitorLike, ValidatorLike
from ._compose import compose

__all__ = ["CoordinationServiceWrapper"]


class CoordinationServiceWrapper(CoordinatedDoor):
    """Wraps methods of ``service`` with the validator, error handler and monitor.

    ``validation_rules`` are compiled once per wrapped method and checked on every call (a
    single mapping argument is checked itself, other calls by parameter name). Validation
    failures raise ``ValidationError`` (a ``ValueError``) and are never retried.

    The components are the process's (``default_coordination()``) unless ``coordination=``
    names another set or they are given one by one. Error-policy keys of ``config``
    (``max_retries``, ``circuit_breaker_threshold``, …) are the defaults of the methods
    wrapped here, under each ``error_config``.
    """

    def __init__(
        self,
        service: Any,
        *,
        validator: ValidatorLike | None = None,
        error_handler: ErrorHandlerLike | None = None,
        performance_monitor: MonitorLike | None = None,
        config: CoordinationConfig | Mapping[str, Any] | None = None,
        coordination: ComponentSet | None = None,
        debug: bool = False,
    ) -> None:
        self.service = service
        self._set_up(config, validator, error_handler, performance_monitor, debug, coordination)

    def wrap_method(
        self,
        method_name: str,
        validation_rules: Any = None,
        error_config: Mapping[str, Any] | None = None,
    ) -> Callable[..., Any]:
        """The service's method, validated, protected and timed (sync or async)."""
        if not isinstance(method_name, str) or not method_name:
            raise ValueError(f"method_name must be a non-empty string, got {method_name!r}")
        if error_config is not None and not isinstance(error_config, Mapping):
            raise TypeError(f"error_config must be a mapping, got {type(error_config).__name__}")
        method = getattr(self.service, method_name, None)
        if method is None or not callable(method):
            raise AttributeError(
                f"{type(self.service).__name__} has no method {method_name!r} to wrap"
            )
        cfg = self.config
        return compose(
            method,
            name=method_name,
            validator=self.validator if cfg.enable_validation else None,
            rules=validation_rules,
            error_handler=self.error_handler,
            error_config=self._with_operation_defaults(error_config),
            monitor=self.performance_monitor if cfg.enable_performance_monitoring else None,
        )

    def get_coordination_status(self) -> dict[str, Any]:
        """The ``validation``, ``error_handling`` and ``performance`` reports."""
        return self._components.status()
