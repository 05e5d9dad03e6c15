"""Secrets, end to end against the real services: a processor whose dead-letter store
(PostgreSQL) and broker sources (RabbitMQ, NATS) have URLs with passwords, after outages
filled in their last errors: neither the exporter, the status page JSON,
``get_processor_status()``, the sources' status and repr, nor the log shows them."""

from __future__ import annotations

import json
import logging
import threading
from urllib.parse import urlsplit

import pytest

from coordination.integration import CoordinationEventProcessor
from coordination.observability import CoordinationMetricsExporter, StatusPage
from loopback import free_port

SECRET = "pw-Attack2-s3cret"

pytestmark = [pytest.mark.rabbitmq, pytest.mark.nats, pytest.mark.postgres]


def test_no_password_of_a_store_or_source_url_shows_anywhere(
    rabbitmq_url: str,
    nats_url: str,
    postgres_url: str,
    unique_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from coordination.backends.nats import NatsJetStreamSource
    from coordination.backends.rabbitmq import RabbitMQSource

    caplog.set_level(logging.DEBUG)
    pg = urlsplit(postgres_url)
    store_url = (
        f"postgresql://{pg.username or 'postgres'}:{SECRET}@{pg.hostname}:{pg.port or 5432}"
        f"{pg.path}?sslmode=disable&application_name=attack2"
    )
    processor = CoordinationEventProcessor(
        dead_letter_path=store_url, config={"dead_letter_namespace": unique_name}
    )
    down = free_port()
    sources = [
        RabbitMQSource(
            processor,
            unique_name,
            f"amqp://guest:{SECRET}@127.0.0.1:{down}/",
            reconnect_interval=0.01,
        ),
        NatsJetStreamSource(
            processor,
            f"attack2.{unique_name}",
            url=f"nats://app:{SECRET}@127.0.0.1:{down}",
            reconnect_interval=0.01,
        ),
    ]
    try:
        for source in sources:
            timer = threading.Timer(0.2, source.stop)
            timer.start()
            source.run(handle_signals=False)
            assert source.status()["last_error"]
        shown = [
            CoordinationMetricsExporter().export_metrics(),
            json.dumps(StatusPage().snapshot(), default=str),
            json.dumps(processor.get_processor_status(), default=str),
            repr(processor.dead_letters),
            caplog.text,
        ]
        for source in sources:
            shown += [json.dumps(source.status()), repr(source)]
        text = "\n".join(shown)
        assert unique_name in text  # the status shows the store and the sources…
        assert SECRET not in text  # …but never a password
    finally:
        for source in sources:
            source.close()
        processor.dead_letters.purge()
        processor.close()
