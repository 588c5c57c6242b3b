"""What each test cost in CPU-seconds, beside pytest's ``--durations`` (which are wall time, and on this
shared two-core machine the clock says more about the neighbours than about the test).

A test's cost is the CPU time of its test process from the start of its setup to the end of its teardown,
``RUSAGE_SELF`` (the test's own work, and its threads': the in-process servers) plus ``RUSAGE_CHILDREN``
(every process it started and waited for, with their own waited-for children: a ``baton`` command, a
benchmark's run, an Airflow a fixture stopped). A session fixture's start falls in the setup of the first
test that used it and its stop in the teardown of the last. The figures are the process's: a child that a
background thread waits for lands in the test that runs when it ends, unless the thread says so
(``reaped_in_background``: tests/bench/early.py's runs), one that Python's ``subprocess`` reaps late (at
another ``Popen``) lands in the test that made that ``Popen``, and a process nobody waited for (an orphan: an
Airflow's components, stopped by killing their shell's group) is in no test's; scripts/cost.py counts the
orphans in the suite's line and names the costliest. ``--cpu-costs=N`` prints the N costliest tests (0:
none); the figure travels to xdist's controller in the teardown report's ``user_properties``.
"""

from __future__ import annotations

import resource

import pytest

PROPERTY = "cpu_s"
_started: dict[str, float] = {}
_background: list[float] = [0.0]  # CPU-seconds of the children background threads reaped


def reaped_in_background(seconds: float) -> None:
    """A background thread of this process reaped a child that used ``seconds``: in no test's cost."""
    _background[0] += seconds


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime - _background[0]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cpu-costs",
        type=int,
        default=0,
        metavar="N",
        help="show the N tests that cost the most CPU-seconds (their process and what it reaped); 0: none",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _started[item.nodeid] = _cpu()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.when == "teardown" and item.nodeid in _started:
        report.user_properties.append((PROPERTY, round(_cpu() - _started.pop(item.nodeid), 2)))
    return report


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    count = config.getoption("cpu_costs")
    if count <= 0:
        return
    costs = [
        (value, report.nodeid)
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "teardown"
        for name, value in getattr(report, "user_properties", ())
        if name == PROPERTY
    ]
    if not costs:
        return
    costs.sort(reverse=True)
    total = sum(value for value, _ in costs)
    terminalreporter.write_sep("=", f"costliest {min(count, len(costs))} tests in CPU-seconds")
    for value, nodeid in costs[:count]:
        terminalreporter.write_line(f"{value:9.1f}  {nodeid}")
    terminalreporter.write_line(
        f"{total:9.1f}  in all {len(costs)} tests (the processes nobody waited for aside)"
    )
