"""The ``monitoring:`` document: its defaults, how a key given replaces only itself, and the exact message
of each hostile case (an unknown key, an impossible number, an absurd window, a malformed runbook)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from baton.errors import TemplateError
from baton.spec.detectors import PLATFORM_SIGNAL, SIGNAL_KINDS
from baton.spec.monitoring import Monitoring, MonitoringDocument, load_config, load_monitoring
from baton.spec.runbooks import Escalate, LowerConcurrency, OpenCircuit, RetryFailedRuns

FILE = "dags/monitoring.yaml"
DURATION_FIX = "(fix: use seconds (300) or a duration like '30s', '5m', '1h30m')"  # the workflows' words


def issues(document: object) -> list[str]:
    with pytest.raises(TemplateError) as caught:
        load_monitoring(document, FILE)
    return [str(issue) for issue in caught.value.issues]


def one(document: object) -> str:
    found = issues(document)
    assert len(found) == 1, found
    return found[0]


def at(path: str, body: dict) -> dict:
    """``{'monitoring': ...}`` with ``body`` nested under the dotted ``path``."""
    for key in reversed(path.split(".")):
        body = {key: body}
    return {"monitoring": body}


def test_an_empty_document_is_the_defaults():
    monitoring = load_monitoring({"monitoring": {}})
    assert monitoring == load_monitoring({}) == Monitoring()
    rate = monitoring.detectors.failure_rate.rate
    assert (rate.windows, rate.min_calls, rate.min_bad, rate.alpha) == (
        [timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1)],
        5,
        3,
        1e-5,
    )
    assert monitoring.detectors.reask_rate.rate.prior_rate == 0.05
    assert (
        monitoring.detectors.latency.robust.floor == 0.05 and monitoring.detectors.tokens.drift.floor == 10.0
    )
    assert monitoring.detectors.queue_wait.robust.min_ratio == 3.0
    assert monitoring.incidents.resolve_after == timedelta(minutes=10)
    assert monitoring.tick == timedelta(minutes=1)
    assert load_monitoring({"monitoring": {"tick": "15s"}}).tick == timedelta(seconds=15)
    assert load_monitoring({"monitoring": {"tick": 3600}}).tick == timedelta(hours=1)
    quick = load_monitoring({"monitoring": {"incidents": {"resolve_after": "20s"}}})  # for a short tick
    assert quick.incidents.resolve_after == timedelta(seconds=20)
    assert monitoring.incidents.severity["failure_rate"] == "critical"
    assert monitoring.runbooks["failure_rate"] == [
        OpenCircuit(do="open_circuit"),
        Escalate(do="escalate", to="on-call", after=timedelta(minutes=15)),
        RetryFailedRuns(do="retry_failed_runs"),
    ]
    assert set(monitoring.incidents.severity) == {*SIGNAL_KINDS, PLATFORM_SIGNAL}
    assert (
        monitoring.incidents.severity[PLATFORM_SIGNAL] == "critical" and monitoring.detectors.platform.enabled
    )


def test_a_key_given_replaces_only_that_key_of_the_signals_defaults():
    text = """
monitoring:
  detectors:
    latency:
      robust: {z: 4, windows: [2m, 10m]}
      drift: null
    failure_rate: {rate: {min_bad: 4}}
    tokens: {enabled: false}
  incidents:
    resolve_after: 15m
    severity: {cost: critical}
  runbooks:
    cost:
      - pause_workflow
      - {do: lower_concurrency, to: 1, after: 5m}
      - {do: escalate, to: "@finance-oncall", after: 1h}
    latency: []
"""
    monitoring = load_monitoring(yaml.safe_load(text))
    latency = monitoring.detectors.latency
    assert (latency.robust.z, latency.robust.windows, latency.robust.floor, latency.drift) == (
        4.0,
        [timedelta(minutes=2), timedelta(minutes=10)],
        0.05,  # latency's own default floor, kept
        None,
    )
    assert monitoring.detectors.failure_rate.rate.min_bad == 4
    assert monitoring.detectors.failure_rate.rate.prior_rate == 0.02
    assert monitoring.detectors.tokens.enabled is False
    assert monitoring.incidents.severity["cost"] == "critical"
    assert monitoring.incidents.severity["latency"] == "warning"
    assert monitoring.runbooks["cost"][1] == LowerConcurrency(
        do="lower_concurrency", to=1, after=timedelta(minutes=5)
    )
    assert monitoring.runbooks["latency"] == []
    assert monitoring.runbooks["failure_rate"][0] == OpenCircuit(do="open_circuit")  # untouched default


def test_windows_are_sorted_and_durations_take_every_spelling():
    monitoring = load_monitoring(
        at("detectors.failure_rate.rate", {"windows": ["1h", 120, "10m"], "baseline": "2d"})
    )
    assert monitoring.detectors.failure_rate.rate.windows == [
        timedelta(minutes=2),
        timedelta(minutes=10),
        timedelta(hours=1),
    ]
    assert monitoring.detectors.failure_rate.rate.baseline == timedelta(days=2)
    spellings = {
        "1d12h": timedelta(days=1, hours=12),
        "PT2H": timedelta(hours=2),
        "01:30:00": timedelta(hours=1, minutes=30),
    }
    for text, span in spellings.items():  # the workflows' Duration: days with hours, ISO 8601, a clock
        assert load_monitoring(at("incidents", {"resolve_after": text})).incidents.resolve_after == span


def test_a_file_is_read_like_a_template_and_its_problems_are_located_at_their_line(tmp_path):
    (tmp_path / "monitoring.yaml").write_text(
        "monitoring:\n  tick: 30s\n  detectors:\n    failure_rat: {}\n  runbooks:\n    cost:\n"
        "      - {do: lower_concurrency}\n"
    )
    with pytest.raises(TemplateError) as caught:
        load_config(tmp_path)
    assert [str(issue) for issue in caught.value.issues] == [
        "monitoring.yaml:4: monitoring.detectors.failure_rat: unknown key 'failure_rat' (fix: did you mean "
        "'failure_rate'?)",
        "monitoring.yaml:7: monitoring.runbooks.cost[0].to: missing required key 'to' (fix: add this key)",
    ]
    (tmp_path / "monitoring.yaml").write_text("monitoring:\n  tick: 30s\n")
    assert load_config(tmp_path).tick == timedelta(seconds=30)
    assert load_config(tmp_path / "absent") == Monitoring()


def test_maintenance_windows_recurring_across_midnight_and_once_with_scopes():
    monitoring = load_monitoring(
        {
            "monitoring": {
                "maintenance": [
                    {
                        "name": "deploys",
                        "days": ["sat"],
                        "at": "23:30",
                        "duration": "2h",
                        "scope": ["workflow:w"],
                    },
                    {
                        "name": "migration",
                        "start": "2026-12-01T22:00:00+01:00",
                        "end": "2026-12-01T23:00:00Z",
                    },
                ]
            }
        }
    )
    saturday_late = datetime(2026, 11, 28, 23, 45, tzinfo=UTC)  # a Saturday
    sunday_early = datetime(2026, 11, 29, 1, 15, tzinfo=UTC)
    assert monitoring.maintenance_at(saturday_late, "step:w.score").name == "deploys"  # the workflow's step
    assert monitoring.maintenance_at(sunday_early, "workflow:w").name == "deploys"  # past midnight
    assert monitoring.maintenance_at(datetime(2026, 11, 29, 1, 30, tzinfo=UTC), "workflow:w") is None
    assert monitoring.maintenance_at(saturday_late, "agent:x") is None  # out of scope
    assert monitoring.maintenance_at(datetime(2026, 12, 1, 21, 30, tzinfo=UTC), "agent:x").name == "migration"
    assert (
        monitoring.maintenance_at(datetime(2026, 12, 1, 23, 0, tzinfo=UTC), "agent:x") is None
    )  # end excluded


def test_the_json_schema_is_generated_and_every_detector_field_is_described():
    schema = MonitoringDocument.model_json_schema()
    for name in ("RateDetector", "RobustDetector", "DriftDetector", "SilenceDetector", "ScheduleDetector"):
        properties = schema["$defs"][name]["properties"]
        assert all("description" in spec for spec in properties.values()), name
    assert schema["$defs"]["Incidents"]["properties"]["resolve_after"]["description"].startswith(
        "an incident resolves"
    )


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            at("detectors.failure_rate.rate", {"min_bad": -1}),
            f"{FILE}: monitoring.detectors.failure_rate.rate.min_bad: Input should be greater than or equal to 1 "
            "(fix: use a larger value)",
        ),
        (
            at("detectors.failure_rate.rate", {"windowz": ["5m"]}),
            f"{FILE}: monitoring.detectors.failure_rate.rate.windowz: unknown key 'windowz' (fix: did you "
            "mean 'windows'?)",
        ),
        (
            at("detectors", {"latencyy": {}}),
            f"{FILE}: monitoring.detectors.latencyy: unknown key 'latencyy' (fix: did you mean 'latency'?)",
        ),
        (
            at("detectors.failure_rate.rate", {"alpha": 0}),
            f"{FILE}: monitoring.detectors.failure_rate.rate.alpha: Input should be greater than 0 (fix: use "
            "a larger value)",
        ),
        (
            at("detectors.failure_rate.rate", {"alpha": float("nan")}),
            f"{FILE}: monitoring.detectors.failure_rate.rate.alpha: Input should be a finite number (fix: "
            "use a finite number)",
        ),
        (
            at("detectors.latency.robust", {"min_points": True}),
            f"{FILE}: monitoring.detectors.latency.robust.min_points: Input should be a valid integer "
            "(fix: use a whole number)",
        ),
        (
            at("detectors.failure_rate.rate", {"windows": ["2d"]}),
            f"{FILE}: monitoring.detectors.failure_rate.rate.windows[0]: 2d is out of range: use a duration "
            "from 1m to 1d",
        ),
        (
            at("detectors.failure_rate.rate", {"windows": ["5m", 300]}),
            f"{FILE}: monitoring.detectors.failure_rate.rate.windows: a window is listed twice: list each length once, "
            "e.g. ['5m', '15m', '1h']",
        ),
        (
            at("detectors.failure_rate.rate", {"windows": []}),
            f"{FILE}: monitoring.detectors.failure_rate.rate.windows: List should have at least 1 item after "
            "validation, not 0 (fix: add at least one entry)",
        ),
        (
            at("detectors.failure_rate.rate", {"baseline": "1h"}),
            f"{FILE}: monitoring.detectors.failure_rate.rate: the baseline (1h) must be at least twice the longest "
            "window (1h): lengthen the baseline or shorten the window",
        ),
        (
            at("detectors.latency.drift", {"bucket": "1m", "span": "30d"}),
            f"{FILE}: monitoring.detectors.latency.drift: the span (30d) holds over 10,000 buckets of 1m: "
            "use larger buckets",
        ),
        (
            at("detectors.latency.drift", {"bucket": "1h", "span": "2h"}),
            f"{FILE}: monitoring.detectors.latency.drift: the span (2h) must hold at least 3 buckets of 1h: lengthen "
            "the span or shorten the bucket",
        ),
        (
            at("incidents", {"resolve_after": "-5m"}),
            f'{FILE}: monitoring.incidents.resolve_after: Input should be a valid timedelta, "day" identifier in '
            f"duration not correctly formatted {DURATION_FIX}",
        ),
        (
            at("incidents", {"resolve_after": True}),  # a boolean is a number of seconds, as in a workflow
            f"{FILE}: monitoring.incidents.resolve_after: 1s is out of range: use a duration from 10s to 7d",
        ),
        (
            at("incidents", {"resolve_after": "5 minutes"}),
            f"{FILE}: monitoring.incidents.resolve_after: Input should be a valid timedelta, invalid character in "
            f"hour {DURATION_FIX}",
        ),
        (
            at("incidents", {"severity": {"cost": "panic"}}),
            f"{FILE}: monitoring.incidents.severity.cost: Input should be 'info', 'warning' or 'critical' "
            "(fix: use one of the allowed values)",
        ),
        (
            at("incidents", {"resolve_after": "9s"}),
            f"{FILE}: monitoring.incidents.resolve_after: 9s is out of range: use a duration from 10s to 7d",
        ),
        (
            {"monitoring": {"tick": "5s"}},
            f"{FILE}: monitoring.tick: 5s is out of range: use a duration from 10s to 1h",
        ),
        (
            {"monitoring": {"tick": 10**30}},
            f"{FILE}: monitoring.tick: Input should be a valid timedelta, durations may not exceed 999,999,999 "
            f"days {DURATION_FIX}",
        ),
        (
            {"monitoring": {"tick": "every minute"}},
            f"{FILE}: monitoring.tick: Input should be a valid timedelta, invalid character in hour {DURATION_FIX}",
        ),
        (
            {"monitoring": {"tick": {"m": 1}}},
            f"{FILE}: monitoring.tick: Input should be a valid timedelta {DURATION_FIX}",
        ),
        (
            at("incidents", {"escalate_count": 1}),
            f"{FILE}: monitoring.incidents.escalate_count: Input should be greater than or equal to 2 (fix: "
            "use a larger value)",
        ),
    ],
)
def test_each_impossible_number_or_window_is_refused_with_its_key_and_fix(document, expected):
    assert one(document) == expected


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (
            {"days": ["sat"], "at": "25:00", "duration": "1h"},
            "monitoring.maintenance[0].at: '25:00' is not a time of day: use 'HH:MM' in UTC, e.g. '02:30'",
        ),
        (
            {"days": ["sat"], "at": "02:00", "duration": "24h"},
            "monitoring.maintenance[0].duration: 1d is out of range: use a duration from 1m to 23h59m",
        ),
        (
            {"days": ["someday"], "at": "02:00", "duration": "1h"},
            "monitoring.maintenance[0].days[0]: Input should be 'mon', 'tue', 'wed', 'thu', 'fri', 'sat' or 'sun' "
            "(fix: use one of the allowed values)",
        ),
        (
            {"start": "2026-12-01T22:00:00", "end": "2026-12-01T23:00:00Z"},
            "monitoring.maintenance[0].start: a time without a timezone is ambiguous: write it in UTC, "
            "e.g. '2026-12-01T22:00:00Z'",
        ),
        (
            {"start": "2026-12-02T00:00:00Z", "end": "2026-12-01T23:00:00Z"},
            "monitoring.maintenance[0]: 'end' (2026-12-01T23:00:00+00:00) is not after 'start' "
            "(2026-12-02T00:00:00+00:00)",
        ),
        (
            {"start": "2026-01-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
            "monitoring.maintenance[0]: a window of 334d is longer than 30 days: turn the detectors off "
            "('enabled: false') instead of hiding every incident",
        ),
        (
            {"start": "2026-12-01T22:00:00Z"},
            "monitoring.maintenance[0]: a one-off window needs both 'start' and 'end' (UTC times)",
        ),
        (
            {"at": "01:00", "duration": "1h", "end": "2026-12-01T23:00:00Z"},
            "monitoring.maintenance[0]: a window is either recurring (days, at, duration) or once (start, end), "
            "not both: split it into two windows",
        ),
        (
            {"days": ["sat"]},
            "monitoring.maintenance[0]: a recurring window needs 'at' ('HH:MM' UTC) and 'duration' (e.g. '30m')",
        ),
        (
            {"at": "01:00", "duration": "1h", "scope": ["everything"]},
            "monitoring.maintenance[0].scope[0]: 'everything' is not a scope: use 'agent:<name>', 'workflow:<id>', "
            "'step:<workflow>.<step>' or 'sensor:<dag id>'",
        ),
        (
            {"at": "01:00", "duration": "1h", "name": "bad\nname"},
            "monitoring.maintenance[0].name: String should match pattern '^[^\\x00-\\x1f\\x7f]+$'",
        ),
    ],
)
def test_each_absurd_maintenance_window_is_refused(window, expected):
    assert one({"monitoring": {"maintenance": [window]}}) == f"{FILE}: {expected}"


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (
            "open_circuitt",
            "monitoring.runbooks.failure_rate[0]: unknown action 'open_circuitt' (did you mean 'open_circuit'?): "
            "use one of open_circuit, lower_concurrency, pause_workflow, retry_failed_runs, escalate",
        ),
        (
            {"do": "nuke"},
            "monitoring.runbooks.failure_rate[0]: unknown action 'nuke': use one of open_circuit, lower_concurrency, "
            "pause_workflow, retry_failed_runs, escalate",
        ),
        (
            {"escalate": {"to": "ann"}},
            "monitoring.runbooks.failure_rate[0]: an action needs 'do', one of open_circuit, lower_concurrency, "
            "pause_workflow, retry_failed_runs, escalate, e.g. {do: lower_concurrency, to: 1}",
        ),
        (
            {"do": "lower_concurrency"},
            "monitoring.runbooks.failure_rate[0].to: missing required key 'to' (fix: add this key)",
        ),
        (
            {"do": "lower_concurrency", "to": 0},
            "monitoring.runbooks.failure_rate[0].to: Input should be greater than or equal to 1 (fix: use a "
            "larger value)",
        ),
        (
            {"do": "escalate", "to": ""},
            "monitoring.runbooks.failure_rate[0].to: String should have at least 1 character (fix: write a "
            "non-empty text)",
        ),
        (
            {"do": "pause_workflow", "after": "8d"},
            "monitoring.runbooks.failure_rate[0].after: 8d is out of range: use a duration from 0s to 7d",
        ),
        (
            {"do": "open_circuit", "probe_after": "9s"},
            "monitoring.runbooks.failure_rate[0].probe_after: 9s is out of range: use a duration from 10s to 7d",
        ),
        (
            {"do": "open_circuit", "probe_for": "8d"},
            "monitoring.runbooks.failure_rate[0].probe_for: 8d is out of range: use a duration from 1m to 7d",
        ),
        (
            {"do": "open_circuit", "probe_for": None},  # only probe_after may be null (no trials)
            f"monitoring.runbooks.failure_rate[0].probe_for: Input should be a valid timedelta {DURATION_FIX}",
        ),
        (
            {"do": "open_circuit", "probe_after": {"deeper": {"deeper": 5}}},
            f"monitoring.runbooks.failure_rate[0].probe_after: Input should be a valid timedelta {DURATION_FIX}",
        ),
        (
            {"do": "open_circuit", "probe_after": "9" * 10_000},
            "monitoring.runbooks.failure_rate[0].probe_after: Input should be a valid timedelta, invalid "
            f"character in hour {DURATION_FIX}",
        ),
        (
            {"do": "retry_failed_runs", "after": "5m"},
            "monitoring.runbooks.failure_rate[0].after: unknown key 'after' (fix: remove it: it is a key elsewhere, "
            "not here)",
        ),
    ],
)
def test_each_malformed_runbook_action_is_refused(action, expected):
    assert one({"monitoring": {"runbooks": {"failure_rate": [action]}}}) == f"{FILE}: {expected}"


def test_hostile_sizes_and_shapes_are_refused():
    assert (
        one(["monitoring"])
        == f"{FILE}: expected a mapping at the top, got list (fix: start with 'monitoring:')"
    )
    assert one({"monitoring": {"runbooks": {"cost": ["open_circuit"] * 21}}}) == (
        f"{FILE}: monitoring.runbooks.cost: List should have at most 20 items after validation, not 21 "
        "(fix: use fewer entries)"
    )
    windows = [{"at": "01:00", "duration": "1h"}] * 1001
    assert one({"monitoring": {"maintenance": windows}}) == (
        f"{FILE}: monitoring.maintenance: List should have at most 1000 items after validation, not 1001 "
        "(fix: use fewer entries)"
    )
    assert one(at("incidents", {"severity": {"nowhere": "info"}})).startswith(
        f"{FILE}: monitoring.incidents.severity.nowhere: Input should be 'failure_rate', "
    )
    nested: object = 5
    for _ in range(50):
        nested = {"deeper": nested}
    assert one(at("detectors.failure_rate.rate", {"min_bad": nested})) == (
        f"{FILE}: monitoring.detectors.failure_rate.rate.min_bad: Input should be a valid integer (fix: "
        "use a whole number)"
    )
    assert one(at("incidents", {"resolve_after": "9" * 400 + "d"})) == (
        f"{FILE}: monitoring.incidents.resolve_after: Input should be a valid timedelta, a numeric value in the "
        f"duration is too large {DURATION_FIX}"
    )
    assert one(at("incidents", {"resolve_after": "9" * 20 + "d"})) == (
        f"{FILE}: monitoring.incidents.resolve_after: Input should be a valid timedelta, durations may not exceed "
        f"999,999,999 days {DURATION_FIX}"
    )
    assert one(at("incidents", {"resolve_after": 1e300})).startswith(
        f"{FILE}: monitoring.incidents.resolve_after: Input should be a valid timedelta, durations may not exceed"
    )


def test_every_problem_of_a_document_is_listed_not_only_the_first():
    found = issues(
        {
            "monitoring": {
                "detectors": {"failure_rate": {"rate": {"min_bad": 0, "alpha": 2}}},
                "runbooks": {"cost": ["nuke"]},
                "maintenance": [{"at": "1:00", "duration": "1h"}],
            }
        }
    )
    assert [line.split(": ")[1] for line in found] == [
        "monitoring.detectors.failure_rate.rate.min_bad",
        "monitoring.detectors.failure_rate.rate.alpha",
        "monitoring.maintenance[0].at",
        "monitoring.runbooks.cost[0]",
    ]
