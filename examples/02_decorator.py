"""Pattern 2 of the spec, "Decorator-Based Integration", runnable.

The spec's decorators with only their imports changed (plus the ``wraps`` import the
spec forgets), then the library's own ``coordinate_operation``, which composes the layers
once when decorating instead of on every call, and really applies ``validation_rules``.

    .venv/bin/python examples/02_decorator.py
"""

from functools import wraps

from coordination.error_handling import handle_errors
from coordination.performance import track_performance
from coordination.validation import CoordinationValidator


# Validation decorator
def validate_input(validation_rules):
    def decorator(func):
        @wraps(func)
        def wrapper(*args, **kwargs):
            validator = CoordinationValidator()

            # Validate input
            input_data = {"args": args, "kwargs": kwargs}
            result = validator.validate_message_structure(input_data)

            if not result.is_valid:
                raise ValueError(f"Input validation failed: {result.errors}")

            return func(*args, **kwargs)

        return wrapper

    return decorator


# Combined decorator
def coordinate_operation(validation_rules=None, error_config=None, operation_name=None):
    def decorator(func):
        @wraps(func)
        def wrapper(*args, **kwargs):
            # Validation
            if validation_rules:
                validator = CoordinationValidator()
                input_data = {"args": args, "kwargs": kwargs}
                result = validator.validate_message_structure(input_data)
                if not result.is_valid:
                    raise ValueError(f"Validation failed: {result.errors}")

            # Performance tracking
            if operation_name:
                perf_decorator = track_performance(operation_name)
                tracked_func = perf_decorator(func)
            else:
                tracked_func = func

            # Error handling
            if error_config:
                error_decorator = handle_errors(**error_config)
                protected_func = error_decorator(tracked_func)
            else:
                protected_func = tracked_func

            return protected_func(*args, **kwargs)

        return wrapper

    return decorator


# Usage Example
@coordinate_operation(
    validation_rules={"required_fields": ["user_id", "data"]},
    error_config={"max_retries": 3, "error_severity": "MEDIUM"},
    operation_name="update_user_profile",
)
def update_user_profile(user_id, data):
    # Existing business logic
    return {"status": "updated", "user_id": user_id}


print(f"spec decorator: {update_user_profile('42', {'theme': 'dark'})}")


@validate_input({"required_fields": ["user_id"]})
def delete_user(user_id):
    return {"status": "deleted", "user_id": user_id}


print(f"spec validate_input: {delete_user('42')}")

# --- the library's decorators: composed once, rules applied to the bound arguments -----
from coordination import integration  # noqa: E402


@integration.coordinate_operation(
    validation_rules={"required_fields": ["user_id", "data"]},
    error_config={"max_retries": 3, "error_severity": "MEDIUM"},
    operation_name="update_user_profile",
)
def update_profile(user_id, data):
    return {"status": "updated", "user_id": user_id}


print(f"library decorator: {update_profile('42', {'theme': 'dark'})}")
try:
    update_profile("42", None)
except ValueError as exc:
    print(f"library decorator rejected: {exc}")
