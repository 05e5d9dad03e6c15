"""Pattern 4 of the spec, "Event-Driven Integration", runnable.

The spec's processor with only its imports changed, then the library's own
``CoordinationEventProcessor``, which also keeps every event that fails in a dead-letter
store (here in memory) so nothing is lost, and can replay them.

    .venv/bin/python examples/04_event_processor.py
"""

from coordination.error_handling import CoordinationErrorHandler
from coordination.performance import CoordinationPerformanceMonitor
from coordination.validation import CoordinationValidator


class CoordinationEventProcessor:
    """Event processor with coordination capabilities"""

    def __init__(self):
        self.validator = CoordinationValidator()
        self.error_handler = CoordinationErrorHandler()
        self.performance_monitor = CoordinationPerformanceMonitor()

        # Start monitoring
        self.performance_monitor.start_monitoring()

    def process_event(self, event_data, event_type):
        """Process event with full coordination support"""

        # Validate event structure
        validation_result = self.validator.validate_message_structure(event_data)
        if not validation_result.is_valid:
            raise ValueError(f"Event validation failed: {validation_result.errors}")

        # Process with error handling and performance monitoring
        with self.performance_monitor.record_operation(f"event_{event_type}"):
            result = self.error_handler.execute_with_error_handling(
                operation=self._process_event_internal,
                args=[event_data, event_type],
                error_severity="MEDIUM",
            )

        return result  # noqa: RET504 (the spec's code, kept as written)

    def _process_event_internal(self, event_data, event_type):
        """Internal event processing logic"""
        # Event processing implementation
        return {"status": "processed", "event_type": event_type}

    def get_processor_status(self):
        """Get event processor coordination status"""
        return {
            "validation": self.validator.get_validation_report(),
            "error_handling": self.error_handler.get_error_report(),
            "performance": self.performance_monitor.get_performance_report(),
        }


# Usage Example
event_processor = CoordinationEventProcessor()

# Process events
events = [
    {"user_id": "123", "action": "login", "timestamp": "2024-01-01T12:00:00Z"},
    {"user_id": "456", "action": "logout", "timestamp": "2024-01-01T12:05:00Z"},
]

for event in events:
    try:
        result = event_processor.process_event(event, "user_activity")
        print(f"✅ Event processed: {result}")
    except Exception as e:
        print(f"❌ Event processing failed: {e}")

event_processor.performance_monitor.stop_monitoring()

# --- the library's processor: rules per event type, dead letters, replay ---------------
from coordination.integration import CoordinationEventProcessor as Processor  # noqa: E402

processor = Processor(
    rules={"user_activity": {"required_fields": ["user_id", "action", "timestamp"]}},
    error_config={"max_retries": 1, "base_delay": 0},
    dead_letter_path=":memory:",
)
for event in [*events, {"user_id": "789"}]:
    try:
        print(f"✅ library: {processor.process_event(event, 'user_activity')}")
    except Exception as e:
        print(f"❌ library: {e}")
print(f"dead letters kept: {processor.dead_letters.count()}")
