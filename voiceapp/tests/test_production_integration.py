"""The production command (scripts/production.sh) and the nginx example (deploy/nginx.conf).

The command runs for real against the test database and Redis: two server processes, a
Celery worker and beat, with Debian's nginx in front (rendered by deploy/render-nginx.sh);
then it is stopped with SIGTERM, and, in a second run, one of its processes is killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import websockets
from django.db import connections

pytestmark = [
    pytest.mark.integration,
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
STARTED = re.compile(r"^== started (?P<name>.+) \(pid (?P<pid>\d+)\)$", re.MULTILINE)


def database_url() -> str:
    db = connections["default"].settings_dict
    if not db["ENGINE"].endswith("postgresql"):
        pytest.skip("the production command needs PostgreSQL (make test's second stage)")
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports on 127.0.0.1."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count > 65535:
            continue
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return first
    raise RuntimeError(f"no {count} consecutive free ports")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Production:
    """A running scripts/production.sh, its output in a file."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> dict[str, int]:
        return {m["name"]: int(m["pid"]) for m in STARTED.finditer(self.log())}


@pytest.fixture
def production(tmp_path: Path) -> Iterator[Callable[..., Production]]:
    """Start scripts/production.sh on the test database and Redis; stopped afterwards."""
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL (the integration stage of make test sets it)")
    started: list[Production] = []

    def start(**extra_env: str) -> Production:
        env = dict(os.environ)
        env.pop("DJANGO_SETTINGS_MODULE", None)  # production settings, not the test ones
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the command makes a fresh one
        env.update(
            DATABASE_URL=database_url(),
            SECRET_KEY="production-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
            STATIC_ROOT=str(tmp_path / "static"),
            CELERY_BEAT_SCHEDULE_FILE=str(tmp_path / "celerybeat-schedule"),
            VOICE_LOAD_MODELS_AT_START="false",  # no audio here; spare the CPU
            SHUTDOWN_GRACE_SECONDS="10",
        )
        env.update(extra_env)
        log_path = tmp_path / f"production-{len(started)}.log"
        process = subprocess.Popen(
            ["bash", "scripts/production.sh"],
            cwd=ROOT,
            env=env,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        run = Production(process, log_path)
        started.append(run)
        return run

    yield start
    for run in started:
        if run.process.poll() is None:
            run.process.send_signal(signal.SIGTERM)
            try:
                run.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                run.process.kill()
        for pid in run.children().values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def render_nginx(tmp_path: Path, **env: str) -> Path:
    """deploy/nginx.conf for these settings, inside a main config nginx can load here."""
    site = subprocess.run(
        ["bash", "deploy/render-nginx.sh"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (tmp_path / "site.conf").write_text(site)
    # The site file as Debian's nginx.conf includes it, with everything else in tmp_path.
    user = "user root root;\n" if os.geteuid() == 0 else ""  # to read pytest's tmp dirs
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"{user}pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        "http {\n    include /etc/nginx/mime.types;\n    access_log off;\n"
        f"    include {tmp_path}/site.conf;\n}}\n"
    )
    return main


def nginx_or_skip() -> None:
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (make test installs it)")


def test_production_refuses_to_start_without_its_services() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    result = subprocess.run(
        ["bash", "scripts/production.sh"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("production: DATABASE_URL is required")
    env["DATABASE_URL"] = "postgres://db.example.org/voice"
    result = subprocess.run(
        ["bash", "scripts/production.sh"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.startswith("production: REDIS_URL is required")


def test_the_rendered_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    nginx_or_skip()
    config = render_nginx(tmp_path, WEB_PROCESSES="3", PORT="9100", STATIC_ROOT="/srv/static")
    site = (tmp_path / "site.conf").read_text()
    assert re.findall(r"server (127\.0\.0\.1:\d+) max_fails", site) == [
        "127.0.0.1:9100",
        "127.0.0.1:9101",
        "127.0.0.1:9102",
    ]
    assert "alias /srv/static/;" in site
    result = subprocess.run(
        [NGINX, "-t", "-c", str(config), "-p", str(tmp_path), "-e", "stderr"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


async def clm_turn(url: str, text: str, session_id: str) -> list[str]:
    """One custom-LLM exchange; the frame types received."""
    message = {"type": "user_message", "message": {"role": "user", "content": text}}
    async with websockets.connect(url) as clm:
        await clm.send(json.dumps({"messages": [message], "custom_session_id": session_id}))
        kinds: list[str] = []
        while not kinds or kinds[-1] != "assistant_end":
            kinds.append(json.loads(await asyncio.wait_for(clm.recv(), 10))["type"])
    return kinds


def test_production_serves_through_nginx_and_stops_gracefully_on_sigterm(
    production, make_agent, tmp_path
) -> None:
    nginx_or_skip()
    make_agent(slug="doctor")
    port = free_ports(2)
    run = production(WEB_PROCESSES="2", PORT=str(port))
    wait_for(lambda: port_open(port) and port_open(port + 1), "both web processes")
    wait_for(lambda: "ready." in run.log() and "beat: Starting" in run.log(), "Celery")
    children = run.children()
    assert sorted(children) == ["beat", f"web {port}", f"web {port + 1}", "worker"]
    # Every process shares a fresh metrics directory.
    environ = Path(f"/proc/{children[f'web {port}']}/environ").read_bytes().split(b"\0")
    setting = next(v for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR="))
    metrics_dir = Path(setting.split(b"=", 1)[1].decode())
    assert metrics_dir.is_dir()

    listen = free_ports(1)
    config = render_nginx(
        tmp_path,
        WEB_PROCESSES="2",
        PORT=str(port),
        LISTEN=f"127.0.0.1:{listen}",
        STATIC_ROOT=str(tmp_path / "static"),
    )
    nginx = subprocess.Popen(
        [NGINX, "-c", str(config), "-p", str(tmp_path), "-e", "stderr", "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: port_open(listen), "nginx", 10)
        base = f"http://127.0.0.1:{listen}"

        def get(path: str) -> tuple[int, dict[str, str], bytes]:
            with urllib.request.urlopen(base + path, timeout=10) as response:
                return response.status, dict(response.headers), response.read()

        status, _, body = get("/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        # Static files come from STATIC_ROOT through nginx; hashed names are cached for good.
        manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())
        hashed = manifest["paths"]["admin/css/base.css"]
        for path, cache in [
            ("admin/css/base.css", "public, max-age=60"),
            (hashed, "public, max-age=31536000, immutable"),
        ]:
            status, headers, _ = get(f"/static/{path}")
            assert (status, headers["Cache-Control"]) == (200, cache), path
        # The custom-LLM socket, upgraded through the proxy.
        kinds = asyncio.run(clm_turn(f"ws://127.0.0.1:{listen}/llm/doctor", "Hello.", "nginx"))
        assert (kinds[0], kinds[-1]) == ("assistant_input", "assistant_end")
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)

    stopping = time.monotonic()
    run.process.send_signal(signal.SIGTERM)
    code = run.process.wait(timeout=30)
    stopped_s = time.monotonic() - stopping
    print(f"\nproduction.sh: all four processes stopped {stopped_s:.1f} s after SIGTERM")
    assert code == 0, run.log()
    assert not [name for name, pid in children.items() if alive(pid)]
    for name in children:
        assert f"== {name} stopped" in run.log()
    assert not metrics_dir.exists()
    assert "Traceback" not in run.log()


def test_production_stops_the_others_and_fails_when_a_process_dies(production) -> None:
    port = free_ports(1)
    run = production(WEB_PROCESSES="1", PORT=str(port))
    wait_for(lambda: len(run.children()) == 3, "the three processes")
    children = run.children()
    os.kill(children[f"web {port}"], signal.SIGKILL)
    code = run.process.wait(timeout=30)
    assert code == 1
    assert f"production: web {port} (pid {children[f'web {port}']}) exited with status 137" in (
        run.log()
    )
    assert not [name for name, pid in children.items() if alive(pid)]
