"""A tiny run of the incident campaign (bench/incidents.py): its own Airflow on PostgreSQL, a minute of
warm-up, one fault for half a minute, half a minute of tail (about three and a half minutes with the
start-up, mostly waiting; a file of its own, so that the other test worker goes on meanwhile). A run every
20 s on average: at one every 10 s, on a loaded machine, nine runs shared the four task slots and none had
finished when the warm-up ended. No detection is asserted (half a minute's fault on a loaded machine may
be missed), only that the campaign ran: traffic succeeded (else the bench exits 1) and the headline."""

from __future__ import annotations

from tests.bench.test_smoke import tiny_run

HEADLINE = r"MTTD (\d+|nan) s, MTTR (\d+|nan) s, false positives \d+ of \d+ alerts \(\d+\.\d %\)"


def test_a_tiny_campaign_ends_with_its_headline(tmp_path):
    args = [
        "--only",
        "error",
        "--warmup",
        "1",
        "--fault",
        "0.5",
        "--tail",
        "0.5",
        "--period",
        "20",
    ]
    tiny_run("incidents", args, HEADLINE, tmp_path)
