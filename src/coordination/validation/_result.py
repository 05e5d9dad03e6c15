"""What a validation returns: a ``ValidationResult`` holding ``ValidationIssue`` items.

Each issue has a stable ``code`` (see ``ErrorCode`` and docs/rules.md), a ``path`` tuple
(like pydantic's ``loc``), the same location as a JSON ``pointer``, the ``rule_set`` it
broke and a ``message`` naming the field, what was expected and what was found. Values of
secret-looking fields never reach a message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Any

__all__ = [
    "ErrorCode",
    "ValidationIssue",
    "ValidationResult",
    "field_label",
    "invalid_result",
    "json_pointer",
]


class ErrorCode(StrEnum):
    """Every code an issue can carry. A ``StrEnum``: compares equal to its string."""

    # the rule vocabulary
    REQUIRED = "required"
    TYPE = "type"
    FORMAT = "format"
    MIN = "min"
    MAX = "max"
    MIN_LENGTH = "min_length"
    MAX_LENGTH = "max_length"
    PATTERN = "pattern"
    ALLOWED = "allowed"
    MIN_ITEMS = "min_items"
    MAX_ITEMS = "max_items"
    UNIQUE_ITEMS = "unique_items"
    ADDITIONAL_FIELD = "additional_field"
    REQUIRES = "requires"
    EXCLUDES = "excludes"
    FORBIDDEN = "forbidden"
    # raw JSON Schema keywords without a vocabulary counterpart
    MULTIPLE_OF = "multiple_of"
    MIN_FIELDS = "min_fields"
    MAX_FIELDS = "max_fields"
    CONTAINS = "contains"
    NOT = "not"
    ANY_OF = "any_of"
    ONE_OF = "one_of"
    FIELD_NAME = "field_name"
    ADDITIONAL_ITEMS = "additional_items"
    CONTENT = "content"
    SCHEMA = "schema"
    # the message itself (checked before any rule runs)
    NOT_A_MAPPING = "not_a_mapping"
    NON_STRING_KEY = "non_string_key"
    NOT_JSON = "not_json"
    NOT_FINITE = "not_finite"
    INTEGER_TOO_LARGE = "integer_too_large"
    INVALID_UNICODE = "invalid_unicode"
    TOO_DEEP = "too_deep"
    CYCLE = "cycle"
    STRING_TOO_LONG = "string_too_long"
    TOO_MANY_ITEMS = "too_many_items"
    TOO_LARGE = "too_large"


def json_pointer(path: tuple[str | int, ...]) -> str:
    """``path`` as an RFC 6901 JSON pointer: ``("a", 0, "b/c")`` → ``/a/0/b~1c``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def field_label(path: tuple[str | int, ...]) -> str:
    """``path`` as dotted text for messages (``address.city``, ``tags.0``), kept short."""
    text = ".".join(str(part) for part in path) or "<message>"
    return text if len(text) <= 120 else f"{text[:60]}…{text[-59:]}"


class ValidationIssue:
    """One problem found in the data: immutable, compared, hashed and unpacked like the
    5-tuple ``(code, path, pointer, rule_set, message)`` it holds.

    >>> ValidationIssue("required", ("email",), "/email", "users", "email: is required").code
    'required'

    The message of a failing field of a flat message is phrased when first read (the same
    text whenever that is), so issues that are only counted or read by code cost no text.
    """

    __slots__ = ("_code", "_message", "_path", "_pointer", "_render", "_rule_set", "_value")

    def __init__(
        self,
        code: str,
        path: tuple[str | int, ...],
        pointer: str,
        rule_set: str | None,
        message: str,
    ) -> None:
        self._code = code
        self._path = path
        self._pointer = pointer
        self._rule_set = rule_set
        self._message: str | None = message
        self._render: Callable[[Any], str] | None = None
        self._value: Any = None

    @property
    def code(self) -> str:
        """The stable error code (equal to an ``ErrorCode`` member)."""
        return self._code

    @property
    def path(self) -> tuple[str | int, ...]:
        """Where, as a tuple of keys and indexes (like pydantic's ``loc``)."""
        return self._path

    @property
    def pointer(self) -> str:
        """The same place as an RFC 6901 JSON pointer."""
        return self._pointer

    @property
    def rule_set(self) -> str | None:
        """The name of the rule set that was broken."""
        return self._rule_set

    @property
    def message(self) -> str:
        """What is wrong: the field, what was expected and what was found."""
        message = self._message
        if message is None:
            # Two threads may both phrase it: they produce the same text.
            message = self._message = self._render(self._value)  # type: ignore[misc]
        return message

    @property
    def field(self) -> str:
        """The path as dotted text (``address.city``, ``tags.0``); ``<message>`` at the root."""
        return field_label(self._path)

    def _astuple(self) -> tuple[str, tuple[str | int, ...], str, str | None, str]:
        return (self._code, self._path, self._pointer, self._rule_set, self.message)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``path`` becomes a list)."""
        return {
            "code": str(self._code),
            "path": list(self._path),
            "pointer": self._pointer,
            "rule_set": self._rule_set,
            "message": self.message,
        }

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"ValidationIssue(code={self._code!r}, path={self._path!r}, "
            f"pointer={self._pointer!r}, rule_set={self._rule_set!r}, message={self.message!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ValidationIssue):
            return NotImplemented
        return self._astuple() == other._astuple()

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, ValidationIssue):
            return NotImplemented
        return self._astuple() < other._astuple()

    def __hash__(self) -> int:
        return hash(self._astuple())

    def __iter__(self) -> Iterator[Any]:
        return iter(self._astuple())

    def __len__(self) -> int:
        return 5

    def __getitem__(self, index: int) -> Any:
        return self._astuple()[index]

    def __reduce__(self) -> tuple[type[ValidationIssue], tuple[Any, ...]]:
        return (ValidationIssue, self._astuple())  # the text, never the value behind it


class ValidationResult:
    """The outcome of one validation: ``is_valid`` and the ``errors`` found (a tuple).

    Read-only (its attributes are properties): one instance stands for every valid result.
    A plain class rather than a frozen dataclass, whose ``__init__`` costs three times more
    on the invalid path.

    >>> ValidationResult(True, ()).is_valid
    True
    """

    __slots__ = ("_errors", "_is_valid", "_rule_set")

    def __init__(
        self, is_valid: bool, errors: tuple[ValidationIssue, ...] = (), rule_set: str | None = None
    ) -> None:
        self._is_valid = is_valid
        self._errors = errors
        self._rule_set = rule_set

    @property
    def is_valid(self) -> bool:
        return self._is_valid

    @property
    def errors(self) -> tuple[ValidationIssue, ...]:
        return self._errors

    @property
    def rule_set(self) -> str | None:
        return self._rule_set

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ValidationResult):
            return NotImplemented
        return (self._is_valid, self._errors, self._rule_set) == (
            other._is_valid,
            other._errors,
            other._rule_set,
        )

    def __hash__(self) -> int:
        return hash((self._is_valid, self._errors, self._rule_set))

    def __repr__(self) -> str:
        return (
            f"ValidationResult(is_valid={self._is_valid!r}, errors={self._errors!r}, "
            f"rule_set={self._rule_set!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict, as ``coordination validate --format json`` prints it."""
        return {
            "is_valid": self._is_valid,
            "rule_set": self._rule_set,
            "errors": [issue.to_dict() for issue in self._errors],
        }


_new_object = object.__new__


def invalid_result(errors: tuple[ValidationIssue, ...], rule_set: str | None) -> ValidationResult:
    """``ValidationResult(False, errors, rule_set)`` for the invalid hot path.

    Calling a class whose ``__init__`` is Python code takes CPython 3.11's generic path
    (about 0.25 µs); allocating and filling the three slots here costs a quarter less.
    """
    result: ValidationResult = _new_object(ValidationResult)
    result._is_valid = False
    result._errors = errors
    result._rule_set = rule_set
    return result
