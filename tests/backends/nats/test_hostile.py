"""Hostile input, generated: subjects and names at construction, and bodies and headers
published by anyone onto the stream, each processed or dead-lettered alone."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination import ConfigError, CoordinationEventProcessor
from coordination.backends.nats import NatsJetStreamSource
from coordination.backends.nats._subjects import check_name, check_subject, covers

from .conftest import admin, consumer_info, delete_streams

TOKENS = st.sampled_from(["a", "b", "orders", "*", ">"])
SUBJECTS = st.lists(TOKENS, min_size=1, max_size=4).map(".".join)
CONCRETE = st.lists(st.sampled_from(["a", "b", "orders"]), min_size=1, max_size=5).map(".".join)


def matches(pattern: str, subject: str) -> bool:
    """NATS matching of a concrete subject, written as a regular expression."""
    parts = []
    for token in pattern.split("."):
        parts.append(
            r"[^.]+" if token == "*" else r"[^.]+(\.[^.]+)*" if token == ">" else re.escape(token)
        )
    return re.fullmatch(r"\.".join(parts), subject) is not None


@given(SUBJECTS, SUBJECTS, CONCRETE)
def test_covers_means_every_subject_matched_is_matched(
    pattern: str, subject: str, concrete: str
) -> None:
    try:
        check_subject(pattern)
        check_subject(subject)
    except ConfigError:
        return
    if covers(pattern, subject) and matches(subject, concrete):
        assert matches(pattern, concrete)
    if ">" not in concrete and "*" not in concrete:
        assert covers(pattern, concrete) == matches(pattern, concrete)


@given(st.text(max_size=60))
def test_any_text_is_a_subject_or_a_config_error(text: str) -> None:
    try:
        checked = check_subject(text)
    except ConfigError as exc:
        problem: ConfigError | None = exc
    else:
        problem = None
        assert checked == text
    assert problem is None or problem.field == "subject"


@given(st.one_of(st.text(max_size=300), st.integers(), st.none(), st.binary(max_size=10)))
def test_any_value_is_a_name_or_a_config_error(value: Any) -> None:
    try:
        checked = check_name("durable", value)
    except ConfigError as exc:
        problem: ConfigError | None = exc
    else:
        problem = None
        assert checked == value
    assert problem is None or "durable" in str(problem)


HEADER_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=20)
HEADER_VALUES = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
        min_size=1,
        max_size=80,
    )
    .map(str.strip)
    .filter(bool)
)
MESSAGES = st.lists(
    st.tuples(
        st.one_of(
            st.binary(max_size=300),
            st.text(max_size=100).map(str.encode),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3)
                ),
                max_leaves=10,
            ).map(lambda v: __import__("json").dumps(v).encode()),
        ),
        st.dictionaries(
            st.one_of(HEADER_NAMES, st.just("event-type"), st.just("traceparent")),
            HEADER_VALUES,
            max_size=4,
        ),
    ),
    min_size=1,
    max_size=8,
)


@pytest.mark.nats
@pytest.mark.slow
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(messages=MESSAGES)
def test_hostile_messages_are_processed_or_dead_lettered_alone(
    nats_url: str, tmp_path: Path, messages: list[tuple[bytes, dict[str, str]]]
) -> None:
    name = f"coordination_test_{uuid.uuid4().hex[:12]}"
    folder = tmp_path / name
    folder.mkdir()
    processor = CoordinationEventProcessor(
        lambda e, t: None,
        error_config={"max_retries": 0},
        dead_letter_path=str(folder / "dead.sqlite3"),
    )
    source = NatsJetStreamSource(
        processor, f"{name}.events", stream=name, url=nats_url, poll_timeout=0.1
    )

    async def scenario() -> None:
        await source.apublish({"first": True}, "made")  # the stream
        nc = await admin(nats_url)
        try:
            js = nc.jetstream()
            for body, headers in messages:
                await js.publish(f"{name}.events", body, headers=headers or None)
        finally:
            await nc.close()
        await source.arun(max_idle_polls=1, handle_signals=False)
        await source.aclose()

    try:
        asyncio.run(scenario())
        counts = source.counts
        assert counts.settled == len(messages) + 1, source.status()
        assert counts.requeued == 0
        assert counts.broker_errors == 0, counts.last_error
        assert processor.dead_letters.count() == counts.poison + counts.dead_lettered
        info = consumer_info(nats_url, name, "coordination")
        assert info.num_pending == 0
        assert info.num_ack_pending == 0
    finally:
        processor.dead_letters.close()
        delete_streams(nats_url, [name])
