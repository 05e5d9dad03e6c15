"""Pattern 1 of the spec, "Service Wrapper Integration", runnable.

The spec's code with only its ``src.core…`` imports changed, then the same job done by
the wrapper the library ships, which also enforces ``validation_rules`` (the spec's sketch
accepts them and ignores them).

    .venv/bin/python examples/01_service_wrapper.py
"""

from functools import wraps

from coordination.error_handling import CoordinationErrorHandler
from coordination.performance import CoordinationPerformanceMonitor
from coordination.validation import CoordinationValidator


class CoordinationServiceWrapper:
    """Wrapper for existing services to add coordination capabilities"""

    def __init__(self, service_instance):
        self.service = service_instance
        self.validator = CoordinationValidator()
        self.error_handler = CoordinationErrorHandler()
        self.performance_monitor = CoordinationPerformanceMonitor()

    def wrap_method(self, method_name, validation_rules=None, error_config=None):
        """Wrap a service method with coordination capabilities"""

        original_method = getattr(self.service, method_name)

        @wraps(original_method)
        def wrapped_method(*args, **kwargs):
            # Validation phase
            if validation_rules:
                validation_result = self.validator.validate_message_structure(
                    {"args": args, "kwargs": kwargs}
                )
                if not validation_result.is_valid:
                    raise ValueError(f"Validation failed: {validation_result.errors}")

            # Performance monitoring
            with self.performance_monitor.record_operation(method_name):
                # Error handling execution
                result = self.error_handler.execute_with_error_handling(
                    operation=original_method, args=args, kwargs=kwargs, **(error_config or {})
                )

            return result  # noqa: RET504 (the spec's code, kept as written)

        return wrapped_method

    def get_coordination_status(self):
        """Get overall coordination system status"""
        return {
            "validation": self.validator.get_validation_report(),
            "error_handling": self.error_handler.get_error_report(),
            "performance": self.performance_monitor.get_performance_report(),
        }


# Usage Example
class LegacyUserService:
    def create_user(self, user_data):
        # Existing business logic
        return {"user_id": "123", "status": "created"}


# Wrap the legacy service
legacy_service = LegacyUserService()
wrapped_service = CoordinationServiceWrapper(legacy_service)

# Wrap specific methods
wrapped_create_user = wrapped_service.wrap_method(
    "create_user",
    validation_rules={"required_fields": ["name", "email"]},
    error_config={"max_retries": 3, "error_severity": "MEDIUM"},
)

# Use wrapped method
result = wrapped_create_user({"name": "John", "email": "john@example.com"})
print(f"spec wrapper: {result}")
status = wrapped_service.get_coordination_status()
print(f"spec wrapper: {status['error_handling']['total_operations']} operation(s) handled")

# --- the wrapper the library ships: the same calls, and the rules are enforced ---------
from coordination.integration import CoordinationServiceWrapper as ShippedWrapper  # noqa: E402

shipped = ShippedWrapper(LegacyUserService())
create_user = shipped.wrap_method(
    "create_user",
    validation_rules={"required_fields": ["name", "email"]},
    error_config={"max_retries": 3, "error_severity": "MEDIUM"},
)
print(f"library wrapper: {create_user({'name': 'John', 'email': 'john@example.com'})}")
try:
    create_user({"name": "Jane"})
except ValueError as exc:  # coordination.ValidationError is a ValueError
    print(f"library wrapper rejected: {exc}")
report = shipped.get_coordination_status()["performance"]
print(f"library wrapper: {report['response_times']['count']} call(s) timed")
