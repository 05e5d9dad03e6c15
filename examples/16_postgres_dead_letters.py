"""A dead-letter store a fleet shares: PostgreSQL, one namespace per service.

With ``dead_letter_path`` set to a ``postgresql://`` URL (the ``postgres`` extra), every
host's event processor keeps its journal and dead letters in the same database. Host A
fails to process a payment and dead-letters it; host B, a separate process, sees that
letter and replays it once the payments service is back. Another service, in its own
``dead_letter_namespace``, sees none of it.

Needs PostgreSQL (127.0.0.1:5432, database ``test``, or ``DEAD_LETTER_URL``).

    .venv/bin/python examples/16_postgres_dead_letters.py
"""

import multiprocessing
import os
import uuid

from coordination import CoordinationConfig, EventDeadLettered
from coordination.integration import CoordinationEventProcessor

DATABASE = os.environ.get("DEAD_LETTER_URL", "postgresql://postgres@127.0.0.1:5432/test")


def processor(handler, namespace):
    return CoordinationEventProcessor(
        handler,
        dead_letter_path=DATABASE,
        error_config={"max_retries": 0},
        config=CoordinationConfig(dead_letter_namespace=namespace),
    )


def host_a(namespace):
    def charge(event, event_type):
        if event["id"] == 2:
            raise ConnectionError("payments service down")
        return "charged"

    with processor(charge, namespace) as events:
        failed = []
        for n in (1, 2, 3):
            try:
                events.process_event({"id": n, "amount": 10 * n}, "payment")
            except EventDeadLettered as exc:
                failed.append(f"payment {n}: {exc.reason}")
        print(f"host A: processed 2 event(s), dead-lettered {len(failed)} ({failed[0]})")


def host_b(namespace):
    with processor(lambda event, event_type: "charged", namespace) as events:
        letters = events.dead_letters.list()
        print(
            f"host B sees {len(letters)} dead letter(s): "
            f"{[letter.event for letter in letters]} reason {letters[0].reason}"
        )
        report = events.dead_letters.replay()
        print(
            f"host B replayed: succeeded {len(report.succeeded)}, failed {len(report.failed)}; "
            f"left {events.dead_letters.count()}"
        )
        print(f"the store is shown as {events.dead_letters.path}")


if __name__ == "__main__":
    suffix = uuid.uuid4().hex[:8]  # fresh namespaces for every run
    billing, shipping = f"billing-{suffix}", f"shipping-{suffix}"
    context = multiprocessing.get_context("spawn")
    for host in (host_a, host_b):
        process = context.Process(target=host, args=(billing,))
        process.start()
        process.join(timeout=60)
        if process.exitcode != 0:
            raise SystemExit(f"{host.__name__} failed")
    with processor(None, shipping) as other_service:
        print(f"the shipping service sees {other_service.dead_letters.count()} dead letter(s)")
    with processor(None, billing) as events:
        events.dead_letters.purge()  # leave nothing behind in the shared database
