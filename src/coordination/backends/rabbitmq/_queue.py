"""The queue a ``RabbitMQSource`` declares, and what a declaration that does not match
the queue already there means.

A queue is declared durable, as a quorum queue by default (replicated, and it counts
deliveries in ``x-delivery-count``) or a classic one. Declaring a queue that exists with
other arguments makes RabbitMQ close the channel with ``PRECONDITION_FAILED``; the source
turns that into a ``ConfigError`` naming the argument that differs, since no retry can
fix it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..._errors import ConfigError
from ..._redact import safe_repr, truncate

__all__ = ["QueueSpec", "QueueType", "mismatch_error"]

QueueType = Literal["quorum", "classic"]
_QUEUE_TYPES = ("quorum", "classic")
_MAX_NAME_BYTES = 255  # an AMQP short string
_ARGUMENT_VALUE = (str, int, float, bool)


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """The queue's name, type and extra arguments (``x-max-length``, ``x-message-ttl``…)."""

    name: str
    queue_type: QueueType = "quorum"
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name:
            raise ConfigError(f"queue: expected a non-empty string, got {name!r}", field="queue")
        if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES or not name.isprintable():
            raise ConfigError(
                f"queue: expected printable text of at most {_MAX_NAME_BYTES} bytes, got "
                f"{safe_repr(name)}",
                field="queue",
            )
        if name.startswith("amq."):
            raise ConfigError(
                f"queue: names starting 'amq.' are reserved by RabbitMQ, got {name!r}",
                field="queue",
            )
        if self.queue_type not in _QUEUE_TYPES:
            raise ConfigError(
                f"queue_type: expected 'quorum' or 'classic', got {self.queue_type!r}",
                field="queue_type",
            )
        if not isinstance(self.arguments, Mapping):
            raise ConfigError(
                "queue_arguments: expected a mapping of x-arguments, got "
                f"{type(self.arguments).__name__}",
                field="queue_arguments",
            )
        for key, value in self.arguments.items():
            if not isinstance(key, str) or not key.startswith("x-") or key == "x-queue-type":
                raise ConfigError(
                    "queue_arguments: expected 'x-…' names (the type is queue_type=), got "
                    f"{safe_repr(key)}",
                    field="queue_arguments",
                )
            if not isinstance(value, _ARGUMENT_VALUE):
                raise ConfigError(
                    f"queue_arguments[{key!r}]: expected text, a number or a bool, got "
                    f"{type(value).__name__}",
                    field="queue_arguments",
                )
        object.__setattr__(self, "arguments", dict(self.arguments))  # a copy of its own

    def declare_arguments(self) -> dict[str, Any]:
        """What ``queue.declare`` sends. A classic queue sends no ``x-queue-type``, so it
        also matches a classic queue declared by a client that never named the type."""
        arguments = dict(self.arguments)
        if self.queue_type == "quorum":
            arguments["x-queue-type"] = "quorum"
        return arguments


# "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/':
#  received 'quorum' but current is 'classic'"
_INEQUIVALENT = re.compile(r"inequivalent arg '([^']*)'.*?received (.*?) but current is (.*)$")


def mismatch_error(spec: QueueSpec, error: BaseException) -> ConfigError:
    """The ``ConfigError`` for a declaration RabbitMQ refused (PRECONDITION_FAILED)."""
    text = " ".join(str(part) for part in getattr(error, "args", ()) if part) or str(error)
    found = _INEQUIVALENT.search(text)
    if found:
        argument, wanted, current = found.groups()
        problem = (
            f"it has {argument} = {truncate(current.strip(), 80)}, this source declares "
            f"{truncate(wanted.strip(), 80)}"
        )
    else:
        problem = truncate(text, 300)
    return ConfigError(
        f"queue {spec.name!r} already exists with other arguments: {problem}. Declare it as "
        "it is (queue_type=, queue_arguments=), or delete it so it is declared anew",
        field="queue",
        value=spec.name,
    )
