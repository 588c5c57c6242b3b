"""bench/incidents.py's wait for the service before its warm-up: the campaign's schedule starts once a run of
its traffic succeeded (on a loaded machine the first runs took minutes), and a service that never delivers
ends the campaign with what it saw. The whole campaign's tiny run: test_smoke_incidents.py."""

from __future__ import annotations

import re

from tests.bench.test_smoke import load_bench

NONE, ONE, THREE = ({"dag_runs": [], "total_entries": n} for n in (0, 1, 3))
POLL = [
    "/api/v2/dags/incident_traffic/dagRuns?state=success&limit=1",
    "/api/v2/dags/incident_traffic/dagRuns?state=failed&limit=1",
]


def test_the_warm_up_waits_for_the_first_run_of_the_traffic_that_succeeded(slow_api, capsys):
    api, server = slow_api
    server.bodies = [(200, NONE), (200, NONE), (200, ONE), (200, NONE)]  # each poll: success, then failed
    counts = {"succeeded": 0, "failed": 0, "runs_triggered": 2}
    assert load_bench("incidents").first_success(api, counts, timeout=30, every=0.01) is True
    assert counts == {"succeeded": 1, "failed": 0, "runs_triggered": 2}
    assert server.paths == POLL * 2  # the second poll saw it
    said = capsys.readouterr().out.splitlines()
    assert said[0] == "traffic starts" and len(said) == 2
    # the seconds it took: 0 unless the machine is loaded
    assert re.fullmatch(r"the first run of incident_traffic succeeded after \d+ s", said[1])


def test_a_service_that_never_delivers_ends_the_wait_with_what_it_saw(slow_api, capsys):
    api, server = slow_api
    # one poll (its timeout is over by then): the success count an error (-1, as run_states counts an error
    # answer), the failed runs three
    server.bodies = [(500, {"detail": "Database error"}), (200, THREE)]
    counts = {"succeeded": 0, "failed": 0}
    assert load_bench("incidents").first_success(api, counts, timeout=0.05, every=0.1) is False
    assert counts == {"succeeded": -1, "failed": 3} and server.paths == POLL
    out, err = capsys.readouterr()
    assert out == "traffic starts\n"
    assert err == (
        "error: no run of incident_traffic succeeded within 0 s of the traffic's start: nothing to measure "
        "(so far: {'succeeded': -1, 'failed': 3})\n"
    )
