"""Pattern 3 of the spec, "Middleware Integration", with Flask, runnable.

The spec's usage with only the import changed: ``CoordinationMiddleware`` is shipped by
the library rather than copied, because the spec's sketch cannot work as written -- it
validates the whole WSGI environ (file objects are not a JSON message, so every request
would be rejected), names operations after a request id (unbounded labels) and retries
the entire application (unsafe once the body is read). The shipped one times each
request under its route template and answers invalid bodies with problem+json.

    .venv/bin/python examples/03_flask_middleware.py
"""

from flask import Flask

from coordination.integration import CoordinationMiddleware

# Usage with Flask
app = Flask(__name__)

# Add coordination middleware
app.wsgi_app = CoordinationMiddleware(
    app.wsgi_app, config={"enable_validation": True, "enable_performance_monitoring": True}
)


@app.route("/api/users", methods=["POST"])
def create_user():
    # Business logic here
    return {"status": "success"}


# --- runnable: send a few requests and read the middleware's status -------------------
client = app.test_client()
for _ in range(3):
    # Closing the response ends the request: the middleware times it until then.
    with client.post("/api/users", json={"name": "John", "email": "john@example.com"}) as response:
        print(f"POST /api/users -> {response.status_code} {response.get_json()}")

# Per-route rule sets for JSON bodies: invalid bodies never reach the view.
strict = Flask(__name__)
strict.add_url_rule("/api/users", view_func=create_user, methods=["POST"])
strict.wsgi_app = CoordinationMiddleware(
    strict.wsgi_app, route_rules={"POST /api/users": {"required_fields": ["name", "email"]}}
)
with strict.test_client().post("/api/users", json={"name": "John"}) as rejected:
    print(f"POST /api/users without email -> {rejected.status_code} {rejected.content_type}")
    problem = rejected.get_json()
    print(f"  {problem['detail']}: {problem['errors'][0]['message']}")

status = app.wsgi_app.get_middleware_status()
operations = status["performance"]["operations"]
print(f"operations timed: {sorted(operations)}")
