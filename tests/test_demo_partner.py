"""The demo partner API as ``make run`` serves it (``python -m demo.http_service``): the job board of
hr_recruiting and the CMS of content_marketing, which a person trying the demo can read back."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
from demo.http_service import PartnerService


def test_run_from_the_command_line_records_posts_and_lists_them_per_path():
    with PartnerService() as probe:  # a port that is free now
        port = probe.port
    server = subprocess.Popen(
        [sys.executable, "-m", "demo.http_service", "--port", str(port)], stdout=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert server.stdout.readline().strip() == f"Demo partner API on {base} (Ctrl-C stops it)"
        deadline = time.monotonic() + 5
        while True:
            try:
                assert httpx.get(f"{base}/board/postings").json() == {"path": "/board/postings", "posts": []}
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        posting = {"title": "Backend engineer"}
        first = httpx.post(f"{base}/board/postings", json=posting, headers={"Idempotency-Key": "k1"})
        again = httpx.post(f"{base}/board/postings", json=posting, headers={"Idempotency-Key": "k1"})
        assert (first.status_code, first.json()) == (
            201,
            {"received": 1, "path": "/board/postings", "duplicate": False},
        )
        assert again.json()["duplicate"] is True
        assert httpx.get(f"{base}/board/postings").json()["posts"] == [posting, posting]
        assert httpx.get(f"{base}/cms/posts").json()["posts"] == []  # each path its own list
    finally:
        server.terminate()
        server.wait(timeout=5)
