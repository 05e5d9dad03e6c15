"""The spec's "Environment-Based Configuration", runnable.

The spec's dataclass is the library's ``CoordinationConfig``: same fields, defaults and
variables, and a bad value names the variable instead of failing deep inside ``int()``.

    COORDINATION_MAX_RETRIES=5 .venv/bin/python examples/05_environment_config.py
"""

from coordination import ConfigError, CoordinationConfig

# Usage
config = CoordinationConfig.from_environment()

print(f"max_retries = {config.max_retries}")
print(f"base_delay = {config.base_delay}")
print(f"circuit_breaker_threshold = {config.circuit_breaker_threshold}")
print(f"enable_validation = {config.enable_validation}")
print(f"validation_rules_path = {config.validation_rules_path}")

# A bad value is reported with the variable it came from.
try:
    CoordinationConfig.from_environment({"COORDINATION_MAX_RETRIES": "three"})
except ConfigError as exc:
    print(f"rejected: {exc}")
