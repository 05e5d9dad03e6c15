"""The middleware pattern on FastAPI (ASGI), runnable.

``CoordinationASGIMiddleware`` is pure ASGI (no ``BaseHTTPMiddleware``): the same
timing, route-template names and problem+json rejections as the WSGI middleware.

    .venv/bin/python examples/10_fastapi_middleware.py
"""

import asyncio

import httpx
from fastapi import FastAPI

from coordination.integration import CoordinationASGIMiddleware

app = FastAPI()
app.add_middleware(
    CoordinationASGIMiddleware,
    config={"enable_validation": True, "enable_performance_monitoring": True},
    route_rules={"POST /api/users": {"required_fields": ["name", "email"]}},
)


@app.post("/api/users")
async def create_user(user: dict):
    # Business logic here
    return {"status": "success"}


@app.get("/api/users/{user_id}")
async def read_user(user_id: str):
    return {"user_id": user_id}


async def main():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://example") as client:
        response = await client.post(
            "/api/users", json={"name": "John", "email": "john@example.com"}
        )
        print(f"POST /api/users -> {response.status_code} {response.json()}")
        rejected = await client.post("/api/users", json={"name": "John"})
        print(
            f"POST /api/users without email -> {rejected.status_code} {rejected.headers['content-type']}"
        )
        for user_id in ("1", "2", "3"):
            await client.get(f"/api/users/{user_id}")


asyncio.run(main())

# The middleware instance Starlette built: walk down the stack to it.
middleware = app.middleware_stack
while not isinstance(middleware, CoordinationASGIMiddleware):
    middleware = middleware.app
operations = middleware.get_middleware_status()["performance"]["operations"]
print(f"operations timed: {sorted(operations)}")
