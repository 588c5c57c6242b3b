"""A tiny run of the incident campaign (bench/incidents.py): its own Airflow on PostgreSQL, a minute of
warm-up, one fault for half a minute, half a minute of tail (about three minutes with the start-up, mostly
waiting). It starts with the test session, in the background (tests/bench/early.py: its arguments are
there), and this test, scheduled last, collects it. A run every 20 s on average: at one every 10 s, on a
loaded machine, nine runs shared the four task slots and none had finished when the warm-up ended. No
detection is asserted (half a minute's fault on a loaded machine may be missed), only that the campaign
ran: traffic succeeded (else the bench exits 1) and the headline."""

from __future__ import annotations

import pytest

from tests.bench import early

pytestmark = pytest.mark.integration  # it starts a service (an Airflow)

HEADLINE = r"MTTD (\d+|nan) s, MTTR (\d+|nan) s, false positives \d+ of \d+ alerts \(\d+\.\d %\)"


def test_a_tiny_campaign_ends_with_its_headline():
    early.collect("incidents", HEADLINE)
