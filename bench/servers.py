"""Server processes for the benchmarks: the product under uvicorn on loopback.

One place for what ``bench/clm_load.py``, ``bench/voice_latency.py`` and ``bench/soak.py``
share: the environment the servers run with, preparing the database (created if it is a
PostgreSQL database that does not exist yet, migrated, bootstrapped with the demo agent),
and starting N uvicorn processes against that one database.

The database is a SQLite file in a temporary directory unless a URL is given; callers that
should follow the environment (``DATABASE_URL``, ``REDIS_URL`` as ``scripts/services.sh``
exports them) pass ``os.environ.get("DATABASE_URL")``. ``REDIS_URL`` passes through from
the environment when it is set, which switches the servers to the Redis channel layer.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SECRET_KEY = "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
PRODUCT_APP = "voiceapp.asgi:application"
START_TIMEOUT_S = 60


@dataclass
class Server:
    """One uvicorn process on loopback."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path | None  # None: the process writes to this process's stdout and stderr

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, path: str, scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(server: Server) -> None:
    """Return once ``server`` accepts connections; exit with its log's end if it cannot."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"server exited with {server.process.returncode}{_log_tail(server)}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server did not start in {START_TIMEOUT_S} s{_log_tail(server)}")


def _log_tail(server: Server, lines: int = 30) -> str:
    tail = server.log().splitlines()[-lines:]
    return "".join(f"\n  | {line}" for line in tail)


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (``VmRSS``; NaN once it has exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return float("nan")
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far; NaN once gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return float("nan")
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_env(tmp: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    """The servers' environment: this one, plus the bench settings and the database URL
    (``database_url``, else a SQLite file in ``tmp``); ``extra`` overrides any of it."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="voiceapp.settings",
        SECRET_KEY=SECRET_KEY,
        DATABASE_URL=database_url or f"sqlite:///{tmp}/bench.sqlite3",
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def is_postgres(env: dict[str, str]) -> bool:
    return env["DATABASE_URL"].split("://", 1)[0] in {"postgres", "postgresql", "pgsql"}


def profile(env: dict[str, str]) -> str:
    """The server profile in words, for the benchmarks' headers."""
    database = "PostgreSQL" if is_postgres(env) else "SQLite"
    layer = "Redis" if env.get("REDIS_URL") else "in-memory channel layer"
    return f"{database} + {layer}"


def _create_postgres_database(url: str) -> None:
    """Create the URL's database if the server does not have it yet (a fresh cluster such
    as ``scripts/services.sh`` starts has only ``postgres``)."""
    parts = urlsplit(url)
    name = parts.path.strip("/")
    maintenance = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def prepare_database(env: dict[str, str]) -> None:
    """Create (PostgreSQL), migrate and bootstrap the servers' database."""
    if is_postgres(env):
        _create_postgres_database(env["DATABASE_URL"])
    subprocess.run([PY, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    # Quiet (it prints the admin password it made), unless it fails.
    done = subprocess.run(
        [PY, "manage.py", "bootstrap"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"manage.py bootstrap failed:\n{done.stdout}{done.stderr}")


def start_servers(
    count: int, env: dict[str, str], *, app: str = PRODUCT_APP, log_dir: Path | None = None
) -> list[Server]:
    """Start ``count`` uvicorn processes serving ``app`` with ``env``, each on a free port;
    return once all accept connections. With ``log_dir``, each writes its output to
    ``server-<port>.log`` there. On failure the ones started are stopped."""
    servers: list[Server] = []
    try:
        for _ in range(count):
            port = free_port()
            log_path = log_dir / f"server-{port}.log" if log_dir else None
            output = log_path.open("wb") if log_path else None
            # The product runs as in production (voiceapp.serve); a baseline app by uvicorn.
            entry = ["voiceapp.serve"] if app == PRODUCT_APP else ["uvicorn", app]
            process = subprocess.Popen(
                [
                    PY,
                    "-m",
                    *entry,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--ws",
                    "websockets-sansio",
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
            )
            if output:
                output.close()  # the child holds its own copy
            servers.append(Server(process, port, log_path))
        for server in servers:
            wait_until_serving(server)
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: list[Server], timeout: float = 30) -> None:
    """Ask each server to shut down (SIGTERM: uvicorn finishes what is in flight); kill
    those that have not exited after ``timeout`` seconds."""
    for server in servers:
        if server.process.poll() is None:
            server.process.terminate()
    for server in servers:
        try:
            server.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
