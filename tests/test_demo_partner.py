"""The demo partner API as ``make run`` serves it (``python -m demo.http_service``): the job board of
hr_recruiting and the CMS of content_marketing, which a person trying the demo can read back."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import httpx
import pytest
from demo.http_service import Outage, PartnerService


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


def test_an_outage_starts_after_the_first_post_to_its_path_and_ends():
    now = [100.0]
    with PartnerService(outages=[Outage("/helpdesk/tickets", 240, 240)], clock=lambda: now[0]) as partner:
        url = partner.url("/helpdesk/tickets")

        def status(at: float) -> int:
            now[0] = at
            return httpx.post(url, json={"ticket": "T-1001"}).status_code

        assert not partner.down("/helpdesk/tickets")  # nothing posted yet: its clock has not started
        assert [status(t) for t in (1000.0, 1239.0, 1240.0, 1479.0, 1480.0)] == [201, 201, 503, 503, 201]
        assert httpx.post(partner.url("/board/postings"), json={}).status_code == 201  # other paths are up
        assert [p["status"] for p in partner.posts("/helpdesk/tickets")] == [201, 201, 503, 503, 201]
        assert partner.count("/helpdesk/tickets") == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/helpdesk/tickets", "'/helpdesk/tickets': the form is PATH:AFTER:LASTING in seconds"),
        ("/x:soon:240", "'/x:soon:240': the form is PATH:AFTER:LASTING"),
        ("helpdesk:1:2", "an outage's path starts with '/'"),
        ("/x:-1:2", "an outage's after is 0 to 86400 seconds, not -1.0"),
        ("/x:1:nan", "an outage's lasting is 0 to 86400 seconds, not nan"),
        ("/x:1:1e309", "an outage's lasting is 0 to 86400 seconds, not inf"),
        ("/" + "a" * 5000 + ":1:2", "at most 200 characters"),
    ],
)
def test_a_malformed_outage_is_refused_with_its_form(text, message):
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        Outage.parse(text)
    assert message in str(refused.value) and len(str(refused.value)) < 300


def test_the_command_line_refuses_a_malformed_outage():
    done = subprocess.run(
        [sys.executable, "-m", "demo.http_service", "--port", "0", "--outage", "/x:later:1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "argument --outage: '/x:later:1': the form is PATH:AFTER:LASTING in seconds" in done.stderr
