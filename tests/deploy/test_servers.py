"""devtools.servers: a PostgreSQL cluster and a Redis of a benchmark's own. A restart is a real one (the server's
start time, Redis's run id change); servers left by a process SIGKILLed before its clean-up (a benchmark killed
by its caller's timeout) are stopped and removed when the next one is made, and a root that is not such a
server's is left alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from devtools.servers import OWNER, PrivatePostgres, PrivateRedis, _listening, reap_orphans
from tests.conftest import ROOT

MAKER = """
import json, sys, time
from devtools.servers import PrivatePostgres, PrivateRedis
with PrivatePostgres() as pg, PrivateRedis() as redis:
    print(json.dumps({"pg": [str(pg.root), pg.port], "redis": [str(redis.root), redis.port]}), flush=True)
    time.sleep(600)
"""


def _started_at(url: str):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]


def test_servers_left_by_a_killed_maker_are_reaped_by_the_next_and_others_are_left_alone(tmp_path):
    maker = subprocess.Popen([sys.executable, "-c", MAKER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        made = json.loads(maker.stdout.readline())
    finally:
        maker.send_signal(signal.SIGKILL)
        maker.wait(timeout=30)
    (pg_root, pg_port), (redis_root, redis_port) = made["pg"], made["redis"]
    assert _listening(pg_port) and _listening(redis_port)  # its clean-up never ran

    stranger = Path(pg_root).parent / "baton-pg-not-a-server"
    stranger.mkdir(exist_ok=True)
    (stranger / OWNER).write_text("not a pid")
    try:
        with PrivateRedis() as redis:  # the next one made reaps both
            assert redis.running and redis.port != redis_port
        assert not Path(pg_root).exists() and not Path(redis_root).exists()
        assert not _listening(pg_port) and not _listening(redis_port)
        assert stranger.exists() and Path(pg_root).parent / "baton-pg-not-a-server" not in reap_orphans(
            stranger.parent
        )
    finally:
        (stranger / OWNER).unlink()
        stranger.rmdir()


def test_a_restart_is_a_new_server_and_the_files_go_with_the_block():
    with PrivatePostgres() as pg, PrivateRedis() as redis:
        before = _started_at(pg.url)
        pg.restart()
        assert _started_at(pg.url) > before
        pg.stop()
        assert not pg.running
        pg.start()
        assert pg.running and (pg.root / OWNER).read_text() == str(os.getpid())
        pid = redis.process.pid
        redis.restart()
        assert redis.running and redis.process.pid != pid
        roots = pg.root, redis.root
    assert not any(root.exists() for root in roots)
