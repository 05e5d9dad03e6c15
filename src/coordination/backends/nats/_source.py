"""``NatsJetStreamSource``: an event processor fed from a NATS JetStream durable pull consumer.

The shared loop (``coordination.backends._source``) does the settling, the outages and the
stop; this module is the JetStream side of it:

- **The stream** is found (the one named, or the one capturing the subject) or created
  with ``subjects=[subject]`` (work-queue retention by default: an acknowledged message
  leaves the stream, so a stream the source made does not grow without bound). A stream
  that exists but does not capture the subject is a ``ConfigError``, as is a subject
  another stream already captures.
- **The consumer** is a durable pull consumer with explicit acks, shared by every process
  that uses the same ``durable``. ``AckWait`` is ``ack_wait``: how long a message a
  killed consumer held waits before it is delivered again. It need not outlast a handler
  with retries: while a batch is settled, the source sends ``+WPI`` (in progress) every
  ``heartbeat`` seconds (``ack_wait / 3`` by default) for each of its messages not settled
  yet, which restarts the server's timer.
  ``MaxDeliver`` is unlimited: the *source* gives up, at delivery ``max_deliveries + 1``,
  by dead-lettering the message, then acknowledging it; a finite server limit would drop a
  message silently whenever the dead-letter store was down at that last delivery. A
  consumer that exists with another ``AckWait`` or ``MaxDeliver`` is updated to these
  (logged); one that cannot become this consumer (a push consumer, another ack policy or
  filter subject) is a ``ConfigError`` naming the difference.
- **A message given back** (its event unsettled, the dead-letter store unreachable) is
  NAKed with ``requeue_delay``, so a store that is down is not hammered; at a stop, what
  was fetched but not started is NAKed without delay, for another consumer to take.
- **Outages**: the client's own reconnection is off, so the shared loop owns it: the
  first failure is logged, every one counted in
  ``coordination_broker_errors_total{broker="nats"}``, and the source reconnects with
  exponential backoff. A fetch on a lost connection fails at once (it does not wait out
  its poll, nor spin), and a server that stops answering is found by the client's pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from ..._errors import ConfigError
from ..._logging import log_extra
from ..._redact import error_text, redact, safe_repr
from ..._time import AsyncSleep, Clock
from .._messages import DEFAULT_MAX_MESSAGE_BYTES, Message
from .._source import (
    BrokerSource,
    Delivery,
    LoopLock,
    MessageProcessor,
    PerLoop,
    _check_seconds,
)
from ._subjects import check_name, check_subject, covers, is_wildcard, stream_name_for

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext, api
except ImportError as exc:  # pragma: no cover - the extra is installed in the test env
    raise ImportError(
        "coordination.backends.nats needs nats-py: pip install 'coordination-systems[nats]'"
    ) from exc

__all__ = ["NatsJetStreamSource"]

Retention = Literal["workqueue", "limits", "interest"]
_RETENTIONS: Final = ("workqueue", "limits", "interest")
_SCHEMES: Final = ("nats://", "tls://", "ws://", "wss://")
_NO_HEADERS: Final[Mapping[str, str]] = {}
_PING_INTERVAL = 5.0  # a server that stops answering is found within ~3 pings
_MAX_PINGS_OUT = 3
_SUBJECTS_OVERLAP = 10065  # JetStream error code: another stream captures the subject
_NAME_IN_USE = 10058  # JetStream error code: a stream of that name exists (other settings)
# The server's -ERR texts that mean the settings are wrong, not that it is down.
_REFUSALS: Final = ("authorization violation", "authentication expired", "user authentication")
_ACK_WAIT_SLACK = 0.001  # seconds: the server keeps nanoseconds, nats-py floats
_CONSUMER_CHECK_INTERVAL = 5.0  # seconds idle between looks for a deleted consumer


class NatsUnavailable(ConnectionError):
    """No NATS server could be reached (the message says where and why)."""


class NatsJetStreamSource(BrokerSource):
    """Consumes ``subject`` through the durable pull consumer ``durable`` of ``stream``.

    >>> source = NatsJetStreamSource(processor, "orders.created", stream="ORDERS")
    >>> source.publish({"order_id": 7}, "order_created")   # a producer, anywhere
    >>> source.run()                                       # until SIGTERM / stop()
    >>> await source.arun(max_idle_polls=3)                # the same on asyncio
    """

    broker = "nats"

    def __init__(
        self,
        processor: MessageProcessor,
        subject: str,
        *,
        stream: str | None = None,
        durable: str = "coordination",
        url: str | Sequence[str] = "nats://127.0.0.1:4222",
        batch_size: int = 100,
        concurrency: int = 1,
        ack_wait: float = 30.0,
        heartbeat: float | None = None,
        max_deliveries: int = 5,
        requeue_delay: float = 5.0,
        retention: Retention = "workqueue",
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        poll_timeout: float = 1.0,
        connect_timeout: float = 2.0,
        publish_timeout: float = 5.0,
        reconnect_interval: float = 0.5,
        max_reconnect_interval: float = 30.0,
        name: str | None = None,
        async_sleep: AsyncSleep | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.subject = check_subject(subject)
        self.stream = None if stream is None else check_name("stream", stream)
        self.durable = check_name("durable", durable)
        self.servers = _check_servers(url)
        if retention not in _RETENTIONS:
            raise ConfigError(
                f"retention: expected one of {', '.join(_RETENTIONS)}, got {retention!r}",
                field="retention",
            )
        self.retention = retention
        _check_seconds("ack_wait", ack_wait, positive=True)
        for field, seconds in (
            ("requeue_delay", requeue_delay),
            ("connect_timeout", connect_timeout),
            ("publish_timeout", publish_timeout),
        ):
            _check_seconds(field, seconds, positive=field != "requeue_delay")
        if heartbeat is None:
            heartbeat = ack_wait / 3
        else:
            _check_seconds("heartbeat", heartbeat, positive=True)
            if heartbeat >= ack_wait:
                raise ConfigError(
                    f"heartbeat: expected fewer seconds than ack_wait={ack_wait:g} (the "
                    f"in-progress signal must reach the server before AckWait ends), got "
                    f"{heartbeat!r}",
                    field="heartbeat",
                )
        if name is not None and (not isinstance(name, str) or not name.isprintable()):
            raise ConfigError(f"name: expected printable text, got {name!r}", field="name")
        super().__init__(
            processor,
            concurrency=concurrency,
            batch_size=batch_size,
            max_deliveries=max_deliveries,
            max_message_bytes=max_message_bytes,
            heartbeat=heartbeat,
            poll_timeout=poll_timeout,
            reconnect_interval=reconnect_interval,
            max_reconnect_interval=max_reconnect_interval,
            async_sleep=async_sleep,
            clock=clock,
        )
        self.ack_wait = float(ack_wait)
        self.requeue_delay = float(requeue_delay)
        self.connect_timeout = float(connect_timeout)
        self.publish_timeout = float(publish_timeout)
        self.name = name or f"coordination {socket.gethostname()}-{os.getpid()} {self.durable}"
        self._consumer: _Link | None = None
        # the publishing connection of each loop, opened once by a task any caller awaits
        self._publishers: PerLoop[asyncio.Task[_Link]] = PerLoop()
        # the consumer's and the publisher's connections look for the stream one at a
        # time on a loop: both finding it missing and making it raced inside the server
        self._ensuring = LoopLock()
        self._consumer_check_every = _CONSUMER_CHECK_INTERVAL

    def __repr__(self) -> str:
        servers = ", ".join(redact(s) for s in self.servers)
        return (
            f"NatsJetStreamSource(subject={self.subject!r}, stream={self.stream!r}, "
            f"durable={self.durable!r}, url={servers!r})"
        )

    # --- the broker's steps -------------------------------------------------------------

    async def _connect(self) -> None:
        link = self._consumer
        if link is not None and link.nc.is_connected:
            return
        await self._disconnect_consumer()
        link = await self._open_link()
        try:
            await self._ensure_consumer(link)
            link.subscription = await link.js.pull_subscribe_bind(
                durable=self.durable, stream=link.stream
            )
        except BaseException:
            await _close_quietly(link.nc)
            raise
        self._consumer = link

    async def _fetch(self, count: int, wait: float) -> list[Delivery]:
        link = self._consumer
        if link is None or link.subscription is None:
            raise nats.errors.ConnectionClosedError
        try:
            messages = await link.subscription.fetch(count, timeout=max(wait, 0.01))
        except TimeoutError:  # nothing to fetch (nats-py raises its subclasses,
            # and asyncio's own when the poll ended between its two pull requests)
            if not link.nc.is_connected:
                raise nats.errors.ConnectionClosedError from None
            await self._check_consumer(link)
            return []
        return [_NatsDelivery(self, message) for message in messages]

    async def _check_consumer(self, link: _Link) -> None:
        """While idle, every few seconds: is the consumer still there? A pull from a
        deleted consumer (or stream) comes back empty like an idle one (nats-py reads the
        server's 409 as a timeout), so the source sat "available", fetching nothing,
        forever. Gone: a broker error, and the reconnect makes both again."""
        now = self._clock()
        if now - link.checked < self._consumer_check_every:
            return
        link.checked = now
        try:
            await link.js.consumer_info(link.stream, self.durable)
        except TimeoutError:  # a slow answer is not a deleted consumer: looked at later
            return
        except nats.js.errors.NotFoundError as exc:
            raise NatsUnavailable(
                f"the consumer {self.durable!r} of stream {link.stream!r} was deleted "
                f"({exc.description or 'not found'}); making it again"
            ) from exc

    async def _publish(self, message: Message) -> None:
        if is_wildcard(self.subject):
            raise ConfigError(
                f"cannot publish to the wildcard subject {self.subject!r}: publish with a "
                f"source whose subject is one subject",
                field="subject",
            )
        link = await self._publisher_link()
        await link.js.publish(
            self.subject,
            message.body,
            timeout=self.publish_timeout,
            stream=link.stream,
            headers=dict(message.headers),
        )

    async def _disconnect(self) -> None:
        await self._disconnect_consumer()
        task = self._publishers.pop()
        if task is None:
            return
        if not task.done():
            task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            link = await task
            await _close_quietly(link.nc)

    def _broker_errors(self) -> tuple[type[BaseException], ...]:
        return (nats.errors.Error, OSError, asyncio.TimeoutError)

    def _shown_location(self) -> str:
        return ", ".join(redact(s) for s in self.servers)

    def _refusal(self, error: BaseException) -> str | None:
        # nats-py reports a refused login as a plain Error quoting the server's -ERR
        text = str(error).lower()
        if isinstance(error, nats.errors.AuthorizationError) or any(
            words in text for words in _REFUSALS
        ):
            return error_text(error, 300)
        return None

    def status(self) -> dict[str, Any]:
        link = self._consumer
        return {
            **super().status(),
            "subject": self.subject,
            "stream": link.stream if link is not None else self.stream,
            "durable": self.durable,
        }

    # --- connections --------------------------------------------------------------------

    async def _open_link(self) -> _Link:
        """A connection with the stream ensured; the client never reconnects by itself."""
        problems: list[BaseException] = []

        async def note(error: Exception) -> None:  # connection errors: the loop counts them
            problems.append(error)
            del problems[:-1]

        nc = Client()
        try:
            await nc.connect(
                list(self.servers),
                name=self.name,
                allow_reconnect=False,
                max_reconnect_attempts=1,  # each server once (nats-py's pool counts from 0)
                reconnect_time_wait=0,
                # seconds as floats: nats-py's hints say int, its code takes any number
                connect_timeout=self.connect_timeout,  # type: ignore[arg-type]
                ping_interval=_PING_INTERVAL,  # type: ignore[arg-type]
                max_outstanding_pings=_MAX_PINGS_OUT,
                error_cb=note,
            )
        except BaseException as exc:
            # nats.connect() leaves a client that failed (a refused login, say) unclosed:
            # its socket lingered until garbage collection, one per reconnect attempt
            await _close_quietly(nc)
            if not isinstance(exc, nats.errors.NoServersError):
                raise
            why = f" ({type(problems[-1]).__name__}: {problems[-1]})" if problems else ""
            where = ", ".join(redact(s) for s in self.servers)
            raise NatsUnavailable(f"no NATS server answered at {where}{why}") from None
        try:
            js = nc.jetstream(timeout=self.connect_timeout)
            async with self._ensuring.get():
                stream = await self._ensure_stream(js)
        except BaseException:
            await _close_quietly(nc)
            raise
        return _Link(nc, js, stream)

    async def _publisher_link(self) -> _Link:
        task = self._publishers.get()
        if task is not None and task.done():
            link = None if task.cancelled() or task.exception() else task.result()
            if link is None or not link.nc.is_connected:
                if link is not None:
                    await _close_quietly(link.nc)
                task = None
        if task is None:
            task = asyncio.get_running_loop().create_task(self._open_link())
            self._publishers.set(task)
        return await asyncio.shield(task)

    async def _disconnect_consumer(self) -> None:
        link, self._consumer = self._consumer, None
        if link is not None:
            await _close_quietly(link.nc)  # flushes the acks written before it

    async def _ensure_stream(self, js: JetStreamContext) -> str:
        """The stream's name; created when missing; ``ConfigError`` when it does not
        capture the subject, or another stream does."""
        name = self.stream
        if name is None:
            try:
                name = await js.find_stream_name_by_subject(self.subject)
            except nats.js.errors.NotFoundError:
                name = stream_name_for(self.subject)
        try:
            info = await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            return await self._create_stream(js, name)
        return self._capturing(name, info)

    def _capturing(self, name: str, info: api.StreamInfo) -> str:
        """``name``, once its stream is seen to capture this source's subject."""
        subjects = list(info.config.subjects or [])
        if not any(covers(pattern, self.subject) for pattern in subjects):
            raise ConfigError(
                f"the NATS stream {name!r} captures {subjects}, not the subject "
                f"{self.subject!r}: add the subject to the stream, or name the stream that "
                f"captures it (stream=...)",
                field="subject",
            )
        return name

    async def _create_stream(self, js: JetStreamContext, name: str) -> str:
        try:
            await js.add_stream(
                name=name,
                subjects=[self.subject],
                retention=api.RetentionPolicy(self.retention),
                storage=api.StorageType.FILE,
            )
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code not in (_SUBJECTS_OVERLAP, _NAME_IN_USE):
                raise
            try:
                other = await js.find_stream_name_by_subject(self.subject)
            except nats.js.errors.NotFoundError:
                other = "another stream"
            if exc.err_code == _NAME_IN_USE or other == name:
                # The stream was not there when looked up and is now: another host (or
                # this source's other connection, the publisher's) made it meanwhile.
                # Looked at again at once and checked like any stream found. Still not
                # found: a restarted server loading its streams from disk knows their
                # subjects before their names; the reconnect looks again after a pause.
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    return self._capturing(name, await js.stream_info(name))
                raise NatsUnavailable(
                    f"the NATS stream {name!r} appeared while this source was creating "
                    f"it ({exc.description or exc.err_code}); looking again"
                ) from exc
            raise ConfigError(
                f"cannot create the NATS stream {name!r} for the subject {self.subject!r}: "
                f"the stream {other!r} already captures it (pass stream={other!r})",
                field="stream",
            ) from None
        self._logger.info(
            "nats: created the stream %r for the subject %r",
            name,
            self.subject,
            extra=log_extra(broker="nats", stream=name, subject=self.subject),
        )
        return name

    async def _ensure_consumer(self, link: _Link) -> None:
        js, stream = link.js, link.stream
        try:
            info = await js.consumer_info(stream, self.durable)
        except nats.js.errors.NotFoundError:
            await js.add_consumer(
                stream,
                api.ConsumerConfig(
                    name=self.durable,
                    durable_name=self.durable,
                    ack_policy=api.AckPolicy.EXPLICIT,
                    deliver_policy=api.DeliverPolicy.ALL,
                    filter_subject=self.subject,
                    ack_wait=self.ack_wait,
                    max_deliver=-1,
                ),
            )
            return
        config = info.config
        _refuse_conflicts(stream, self.durable, self.subject, config)
        if (
            config.ack_wait is None
            or abs(config.ack_wait - self.ack_wait) > _ACK_WAIT_SLACK
            or config.max_deliver not in (None, -1)
        ):
            self._logger.warning(
                "nats: updating the consumer %r of stream %r: ack_wait %ss -> %ss, "
                "max_deliver %s -> unlimited (the source dead-letters at delivery %d)",
                self.durable,
                stream,
                config.ack_wait,
                self.ack_wait,
                config.max_deliver,
                self.max_deliveries + 1,
                extra=log_extra(broker="nats", stream=stream, consumer=self.durable),
            )
            await js.add_consumer(
                stream, config.evolve(ack_wait=self.ack_wait, max_deliver=-1, backoff=None)
            )


class _Link:
    """One connection: its JetStream context, the stream it found, its subscription."""

    __slots__ = ("checked", "js", "nc", "stream", "subscription")

    def __init__(self, nc: Client, js: JetStreamContext, stream: str) -> None:
        self.nc = nc
        self.js = js
        self.stream = stream
        self.checked = float("-inf")  # when the consumer was last seen to exist
        self.subscription: JetStreamContext.PullSubscription | None = None


class _NatsDelivery:
    """A JetStream message until it is acknowledged, NAKed, or its AckWait ends."""

    __slots__ = ("_message", "_source")

    def __init__(self, source: NatsJetStreamSource, message: Msg) -> None:
        self._source = source
        self._message = message

    @property
    def body(self) -> bytes:
        return self._message.data

    @property
    def headers(self) -> Mapping[str, Any]:
        return self._message.headers or _NO_HEADERS

    @property
    def delivery_count(self) -> int | None:
        # The count is a token of the reply subject: $JS.ACK.<stream>.<consumer>.<count>...
        # (read directly, nats-py's metadata parses every field and a timestamp)
        tokens = self._message.reply.split(".")
        if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK" and tokens[4].isdigit():
            return int(tokens[4])
        try:  # the longer form, with a domain and an account hash
            return self._message.metadata.num_delivered
        except (nats.errors.Error, ValueError, IndexError):  # not a JetStream reply subject
            return None

    @property
    def ident(self) -> str:
        try:
            sequence = self._message.metadata.sequence
        except (nats.errors.Error, ValueError, IndexError):
            return f"with the reply subject {safe_repr(self._message.reply, 120)}"
        return f"{sequence.stream} of stream {self._message.metadata.stream!r}"

    @property
    def fallback_type(self) -> str | None:
        return None

    async def ack(self) -> None:
        await self._message.ack()

    async def requeue(self) -> None:
        # At a stop another consumer should take it now; otherwise the event could not be
        # settled (the store is down): delayed, so the store is not hammered.
        stopping = self._source._stopping.is_set()
        await self._message.nak(delay=None if stopping else self._source.requeue_delay)

    async def in_progress(self) -> None:
        await self._message.in_progress()


def _refuse_conflicts(stream: str, durable: str, subject: str, config: api.ConsumerConfig) -> None:
    """A ``ConfigError`` when the existing consumer cannot become this source's."""
    differences = []
    if config.deliver_subject:
        differences.append(f"it is a push consumer (deliver_subject {config.deliver_subject!r})")
    if config.ack_policy not in (None, api.AckPolicy.EXPLICIT):
        differences.append(f"its ack policy is {_text(config.ack_policy)!r}, not 'explicit'")
    filters = [config.filter_subject] if config.filter_subject else []
    filters += list(config.filter_subjects or [])
    if filters != [subject]:
        shown = filters or ["(none: every subject of the stream)"]
        differences.append(f"it filters {shown}, not {subject!r}")
    if differences:
        raise ConfigError(
            f"the NATS consumer {durable!r} of stream {stream!r} exists with another "
            f"configuration: {'; '.join(differences)}. Delete it, or choose another "
            f"durable=...",
            field="durable",
        )


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


def _check_servers(url: object) -> tuple[str, ...]:
    servers = [url] if isinstance(url, str) else url
    if (
        not isinstance(servers, list | tuple)
        or not servers
        or not all(isinstance(s, str) and s.startswith(_SCHEMES) for s in servers)
    ):
        shown = redact(str(url))[:200]
        raise ConfigError(
            f"url: expected a NATS URL ({', '.join(_SCHEMES)}) or a list of them, got {shown}",
            field="url",
        )
    return tuple(servers)


async def _close_quietly(nc: Client) -> None:
    with contextlib.suppress(nats.errors.Error, OSError, asyncio.TimeoutError):
        await nc.close()
