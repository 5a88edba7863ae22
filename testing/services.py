"""Stop and start the PostgreSQL and Redis that ``scripts/services.sh`` started, for fault tests.

``start_services`` exports where the services live (``SERVICES_DIR``, ``PG_BIN``,
``PG_DATA``, ``PG_PORT``, ``REDIS_PORT``); :class:`Services` runs that script's
``pg_stop`` / ``pg_start`` / ``redis_stop`` / ``redis_start`` with them, so a service comes
back on the same port with the same data (Redis: empty, as it keeps nothing). ::

    services = Services.from_environment()   # ServicesUnavailable without them
    services.stop_redis()
    ...
    services.start_redis()

Tests that stop a service must start it again however they end (``try``/``finally``, or
:meth:`Services.ensure_running` in a fixture's teardown): the tests after them share it.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "services.sh"
_VARIABLES = ("SERVICES_DIR", "PG_BIN", "PG_DATA", "PG_PORT", "REDIS_PORT")


class ServicesUnavailable(Exception):
    """The services were not started by ``scripts/services.sh`` in this environment."""


@dataclass(frozen=True)
class Services:
    environ: Mapping[str, str]

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Services:
        environ = dict(os.environ if environ is None else environ)
        missing = [name for name in _VARIABLES if not environ.get(name)]
        if missing:
            raise ServicesUnavailable(
                f"{', '.join(missing)} not set: start the services with scripts/services.sh "
                "(make test does)"
            )
        return cls(environ)

    @property
    def pg_port(self) -> int:
        return int(self.environ["PG_PORT"])

    @property
    def redis_port(self) -> int:
        return int(self.environ["REDIS_PORT"])

    def stop_postgres(self) -> None:
        """Fast shutdown: sessions are cut and open transactions roll back."""
        self._run("pg_stop")

    def start_postgres(self) -> None:
        """Start it again on the same port; returns once it accepts connections.

        This process's own database connections died with the server: they are dropped
        (Django opens new ones when next needed), so later tests do not inherit them.
        """
        self._run("pg_start")
        _drop_stale_connections()

    def stop_redis(self) -> None:
        """``SHUTDOWN NOSAVE``: everything in it (channel groups, queued tasks) is gone."""
        self._run("redis_stop")

    def start_redis(self) -> None:
        """Start it again, empty, on the same port; returns once it answers PING."""
        self._run("redis_start")

    def postgres_up(self) -> bool:
        return _port_open(self.pg_port)

    def redis_up(self) -> bool:
        return _port_open(self.redis_port)

    def ensure_running(self) -> None:
        """Start whichever service is down (for a fault test's teardown)."""
        if not self.postgres_up():
            self.start_postgres()
        if not self.redis_up():
            self.start_redis()

    def _run(self, function: str) -> None:
        result = subprocess.run(
            ["bash", "-c", f'source "{SCRIPT}" && {function}'],
            env=dict(self.environ),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{function} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _close_unusable() -> None:
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.is_usable():
            connection.close()


def _drop_stale_connections() -> None:
    """Close dead connections in this thread and in asgiref's thread for sync code, where
    ``sync_to_async`` (and Channels' ``database_sync_to_async``) keep theirs."""
    from asgiref.sync import SyncToAsync

    _close_unusable()
    SyncToAsync.single_thread_executor.submit(_close_unusable).result(timeout=10)
