"""The validation layer: YAML rule sets compiled to JSON Schema 2020-12, run by jsonschema-rs.

>>> from coordination.validation import CoordinationValidator
>>> validator = CoordinationValidator(config={})
>>> validator.validate({"name": "Ann"}, {"required_fields": ["name"]}).is_valid
True

The rule language is described in docs/rules.md, the validator in docs/validation.md.
"""

from .._errors import RuleSetError, ValidationError
from ._decorator import default_validator, validate_input
from ._result import ErrorCode, ValidationIssue, ValidationResult
from ._ruleset import RuleSet
from ._validator import CoordinationValidator, load_rule_sets

__all__ = [
    "CoordinationValidator",
    "ErrorCode",
    "RuleSet",
    "RuleSetError",
    "ValidationError",
    "ValidationIssue",
    "ValidationResult",
    "default_validator",
    "load_rule_sets",
    "validate_input",
]
