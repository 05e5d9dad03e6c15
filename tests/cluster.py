"""A real 3-master Redis Cluster on free loopback ports, started and torn down by the tests.

``LoopbackCluster(workdir).start()`` runs three ``redis-server --cluster-enabled yes``
(no persistence, their cluster config files in ``workdir``), joins them with
``redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`` and waits until every
node reports ``cluster_state:ok`` (``replicas=1``: six servers, a replica per master).
``kill(port)`` SIGKILLs one master (the test of the outage policy), ``restart(port)``
brings it back; ``stop()`` ends every server it started, whatever state they are in.

Without ``redis-server`` / ``redis-cli`` the caller is skipped, unless
COORDINATION_REQUIRE_REDIS=1, which makes that a failure (as ``loopback.require_redis``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from loopback import free_port, redis_problem

__all__ = ["LoopbackCluster", "cluster_binaries"]

NODES = 3
START_TIMEOUT = 20.0
# Short, so a killed master is marked failed (and the cluster down) within a second or two.
NODE_TIMEOUT_MS = 1000


def cluster_binaries() -> tuple[str, str]:
    """``redis-server`` and ``redis-cli``; skip (fail under COORDINATION_REQUIRE_REDIS=1)."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        missing = " and ".join(
            n for n, p in (("redis-server", server), ("redis-cli", cli)) if not p
        )
        message = f"{missing} not installed (needed to start a Redis Cluster)"
        if os.environ.get("COORDINATION_REQUIRE_REDIS") == "1":
            pytest.fail(f"{message} and COORDINATION_REQUIRE_REDIS=1", pytrace=False)
        pytest.skip(f"{message}; set COORDINATION_REQUIRE_REDIS=1 to make this a failure")
    return server, cli


class LoopbackCluster:
    """Three cluster-enabled redis-servers on 127.0.0.1, joined into one cluster."""

    def __init__(self, workdir: Path, *, full_coverage: bool = True, replicas: int = 0) -> None:
        self.server, self.cli = cluster_binaries()
        self.workdir = workdir
        # False: the masters still up keep serving their slots while one is down (with
        # the default, they answer CLUSTERDOWN once the dead one is marked failed).
        self.full_coverage = full_coverage
        self.replicas = replicas  # per master: a killed master's replica takes over
        self.ports: list[int] = []
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """A running node's URL: the client discovers the other masters from it."""
        return f"redis://127.0.0.1:{self.running_ports()[0]}/0"

    def start(self) -> LoopbackCluster:
        try:
            for _ in range(NODES * (1 + self.replicas)):
                self._start_node(self._unused_port())
            self._create()
            self.wait_until("ok")
            if self.replicas:
                self._wait_replicas_synced()
        except BaseException:
            self.stop()
            raise
        return self

    def _unused_port(self) -> int:
        # The cluster bus listens on port + 10000: both must be free (and below 65536).
        while True:
            port = free_port()
            if port + 10000 < 65536 and port not in self.ports and _free(port + 10000):
                return port

    def _start_node(self, port: int) -> None:
        node_dir = self.workdir / f"node-{port}"
        node_dir.mkdir(exist_ok=True)
        process = subprocess.Popen(
            [
                self.server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(node_dir / "nodes.conf"),
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--cluster-require-full-coverage",
                "yes" if self.full_coverage else "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(node_dir),
                "--logfile",
                str(node_dir / "redis.log"),  # kept in the test's tmp dir, for a failure
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.ports.append(port)
        self._processes[port] = process
        deadline = time.monotonic() + START_TIMEOUT
        while redis_problem("127.0.0.1", port) is not None:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"cluster node on port {port} did not start")
            time.sleep(0.02)

    def _create(self) -> None:
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        result = subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *nodes,
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=START_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                "redis-cli --cluster create failed: "
                + (result.stdout + result.stderr).decode(errors="replace")[-2000:]
            )

    def _wait_replicas_synced(self) -> None:
        """Until every replica's link to its master is up (its first full sync done): a
        replica that never synced is not promoted when its master dies."""
        deadline = time.monotonic() + START_TIMEOUT
        replicas = [port for port in self.ports if port not in self.masters()]
        while True:
            links = {
                port: self._section(port, "replication").get("master_link_status")
                for port in replicas
            }
            if all(link == "up" for link in links.values()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"replicas did not sync with their masters: {links}")
            time.sleep(0.1)

    def _section(self, port: int, section: str) -> dict[str, str]:
        result = subprocess.run(
            [self.cli, "-h", "127.0.0.1", "-p", str(port), "info", section],
            capture_output=True,
            timeout=5,
            check=False,
        )
        pairs = (line.split(":", 1) for line in result.stdout.decode().splitlines())
        return {k: v.strip() for k, v in (p for p in pairs if len(p) == 2)}

    def info(self, port: int) -> dict[str, str]:
        """``CLUSTER INFO`` of the node on ``port`` (empty when it does not answer)."""
        result = subprocess.run(
            [self.cli, "-h", "127.0.0.1", "-p", str(port), "cluster", "info"],
            capture_output=True,
            timeout=5,
            check=False,
        )
        pairs = (line.split(":", 1) for line in result.stdout.decode().splitlines())
        return {k: v.strip() for k, v in (p for p in pairs if len(p) == 2)}

    def wait_until(self, state: str, *, ports: list[int] | None = None) -> None:
        """Until every node on ``ports`` (default: every running node) says
        ``cluster_state:<state>`` (``ok``, ``fail``)."""
        ports = ports if ports is not None else self.running_ports()
        deadline = time.monotonic() + START_TIMEOUT
        while not all(self.info(p).get("cluster_state") == state for p in ports):
            if time.monotonic() > deadline:
                states = {p: self.info(p).get("cluster_state") for p in ports}
                raise RuntimeError(f"cluster did not reach cluster_state:{state}: {states}")
            time.sleep(0.05)

    def running_ports(self) -> list[int]:
        return [p for p in self.ports if self._processes[p].poll() is None]

    def port_of(self, key: str) -> int:
        """The port of the master serving ``key``'s slot (asked of the cluster itself)."""
        import redis

        client = redis.RedisCluster.from_url(self.url)
        try:
            return int(client.get_node_from_key(key).port)
        finally:
            client.close()

    def masters(self) -> list[int]:
        """The ports of the masters serving slots now (as the cluster itself says)."""
        import redis

        client = redis.RedisCluster.from_url(self.url)
        try:
            return sorted(int(node.port) for node in client.get_primaries())
        finally:
            client.close()

    def wait_for_failover(self, port: int) -> None:
        """Until the dead master on ``port`` serves no slot (its replica took them over)
        and the cluster is ``ok`` again."""
        deadline = time.monotonic() + START_TIMEOUT
        while port in self.masters():
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica took over from the master on port {port}")
            time.sleep(0.1)
        self.wait_until("ok")

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port``: no replica takes over, so its slots go unserved
        (and, with full coverage required, the whole cluster answers CLUSTERDOWN)."""
        process = self._processes[port]
        process.kill()
        process.wait(timeout=10)

    def restart(self, port: int) -> None:
        """Start the killed node on ``port`` again: its nodes.conf brings it back as the
        same master of the same slots (its data is gone: no persistence)."""
        if self._processes[port].poll() is None:
            raise RuntimeError(f"cluster node on port {port} is still running")
        self.ports.remove(port)
        self._start_node(port)
        self.wait_until("ok")

    def stop(self) -> None:
        for process in self._processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self._processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a wedged server
                process.kill()
                process.wait(timeout=10)


def _free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
