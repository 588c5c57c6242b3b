"""invoice_processing (dags/workflows/invoice_processing.yaml) in real ``dag.test()`` runs, posting to
a throwaway PostgreSQL business database (``business_db``).

Six runs, each shared by the tests that read it, in this order:

1. northwind_INV-1001.pdf, below the approval threshold: extracted, validated, posted.
2. the same invoice again: a duplicate, refused by validate; nothing posted.
3. contoso_CT-2026-0457.txt, above the threshold: waits for a person, who approves; posted.
4. fabrikam_FB-88210.pdf, above the threshold: a person rejects it; nothing posted.
5. bad_tailspin_TS-0099.txt: a line amount is wrong; validate fails with the file and the field,
   and the failure alert reaches Slack.
6. litware_LW-3307.txt with post_lines failing after its post on every try (BATON_FAULTS): the
   saga removes the posted entry and its lines.

A person answers the way Airflow's HITL REST endpoint (``PATCH .../hitlDetails``) records it:
the response on the task's HITL detail, and the parked task resumed with it.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from demo.skills.invoices import INVOICES_DIR, InvalidInvoice, extract_invoice
from sqlalchemy import create_engine, select

from baton.cli import main as baton
from baton.events import EventStore
from baton.registry import SkillRequest
from devtools import faults
from tests.conftest import DAGS, run_dag_test_in_subprocess
from tests.hitl import CarefulPerson, Person

DAG_ID = "invoice_processing"
STEPS = ["extract", "validate", "approve", "post_entry", "post_lines", "_compensate"]

NORTHWIND = {
    "file": "northwind_INV-1001.pdf",
    "format": "pdf",
    "vendor": "Northwind Office Supply Ltd",
    "invoice_number": "INV-1001",
    "date": "2026-10-03",
    "currency": "EUR",
    "lines": [
        {"description": "Ergonomic office chair", "quantity": 4.0, "unit_price": 189.0, "amount": 756.0},
        {"description": "Standing desk frame", "quantity": 2.0, "unit_price": 240.5, "amount": 481.0},
        {"description": "Cable management kit", "quantity": 10.0, "unit_price": 6.95, "amount": 69.5},
    ],
    "subtotal": 1306.5,
    "tax_rate": 20.0,
    "tax": 261.3,
    "total": 1567.8,
}
CONTOSO = {
    "file": "contoso_CT-2026-0457.txt",
    "format": "text",
    "vendor": "Contoso Cloud Services Inc.",
    "invoice_number": "CT-2026-0457",
    "date": "2026-10-31",
    "currency": "USD",
    "lines": [
        {"description": "Cloud hosting (October)", "quantity": 1.0, "unit_price": 4200.0, "amount": 4200.0},
        {"description": "Managed database", "quantity": 2.0, "unit_price": 850.0, "amount": 1700.0},
        {"description": "Support hours", "quantity": 12.0, "unit_price": 95.0, "amount": 1140.0},
    ],
    "subtotal": 7040.0,
    "tax_rate": 8.0,
    "tax": 563.2,
    "total": 7603.2,
}


# --- running the workflow --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ledger_db(business_db) -> str:
    """The business database (PostgreSQL); the skills create the ledger tables in it."""
    return business_db


def run_invoice(ledger_db, conf: dict, env: dict | None = None, person: Person | None = None) -> dict:
    """``dag.test()`` of invoice_processing in a fresh process, the business database on PostgreSQL;
    ``person`` answers what the run asks meanwhile. What the run did."""
    business = ledger_db.replace("postgresql+psycopg://", "postgres://")
    run, results, output = run_dag_test_in_subprocess(
        DAGS,
        "dags-folder",
        DAG_ID,
        conf,
        env={"AIRFLOW_CONN_BATON_BUSINESS": business, **(env or {})},
        person=person,
    )
    assert person is None or person.asked is not None, f"nobody was asked:\n{output[-4000:]}"
    events = list(EventStore.from_airflow().read(run.run_id))
    asked = person.asked if person else None
    return {"run": run, "results": results, "output": output, "events": events, "asked": asked}


def ledger_rows(ledger_db: str, invoice_number: str) -> tuple[list[dict], list[dict]]:
    """(the entry's header rows, its line rows) in the business database."""
    from demo.ledger import ledger, ledger_lines

    engine = create_engine(ledger_db)
    try:
        with engine.connect() as conn:
            headers = [
                dict(r._mapping)
                for r in conn.execute(select(ledger).where(ledger.c.invoice_number == invoice_number))
            ]
            ids = [h["id"] for h in headers]
            lines = [
                dict(r._mapping)
                for r in conn.execute(
                    select(ledger_lines)
                    .where(ledger_lines.c.entry_id.in_(ids))
                    .order_by(ledger_lines.c.line_no)
                )
            ]
    finally:
        engine.dispose()
    return headers, lines


def _types(events: list, step: str | None = None) -> list[str]:
    return [e.type for e in events if step is None or e.step == step]


@pytest.fixture(scope="module")
def happy(airflow_db, ledger_db):
    return run_invoice(ledger_db, {"invoice": "northwind_INV-1001.pdf"})


@pytest.fixture(scope="module")
def duplicate(happy, ledger_db):
    return run_invoice(ledger_db, {"invoice": "northwind_INV-1001.pdf"})


@pytest.fixture(scope="module")
def approved(airflow_db, ledger_db):
    person = CarefulPerson(DAG_ID, "approve", ["Approve"], user="ap.lead", tries=HURRIED)
    answered = run_invoice(ledger_db, {"invoice": "contoso_CT-2026-0457.txt"}, person=person)
    return {**answered, "attempts": person.attempts, "run_id": person.run_id}


@pytest.fixture(scope="module")
def rejected(airflow_db, ledger_db):
    person = Person(DAG_ID, "approve", ["Reject"], user="cfo")
    return run_invoice(ledger_db, {"invoice": "fabrikam_FB-88210.pdf"}, person=person)


@pytest.fixture(scope="module")
def malformed(airflow_db, ledger_db, slack):
    return run_invoice(
        ledger_db,
        {"invoice": "bad_tailspin_TS-0099.txt"},
        env={"AIRFLOW_CONN_BATON_SLACK": slack.connection},
    )


@pytest.fixture(scope="module")
def saga(airflow_db, ledger_db):
    env = faults.environment(fail_after={"post_lines": [1, 2, 3]})
    return run_invoice(ledger_db, {"invoice": "litware_LW-3307.txt"}, env=env)


# --- 1. below the threshold: extracted, validated, posted --------------------------------------------


def test_a_pdf_invoice_below_the_threshold_is_extracted_validated_and_posted(happy):
    run, results = happy["run"], happy["results"]
    assert run.state == "success", happy["output"][-4000:]
    assert run.task_states == {
        "extract": "success",
        "validate": "success",
        "approve": "skipped",
        "post_entry": "success",
        "post_lines": "success",
        "_compensate": "skipped",
    }
    assert results["extract"][1] == NORTHWIND
    validated = results["validate"][1]
    assert validated["invoice"] == NORTHWIND
    assert (validated["approval_threshold"], validated["needs_approval"]) == (5000.0, False)
    assert validated["checks"] == [
        "3 line amount(s) = qty x unit price",
        "subtotal 1,306.50 = the sum of the lines",
        "tax rate 20% is allowed",
        "tax 261.30 = 20% of the subtotal",
        "total 1,567.80 = subtotal + tax",
        "invoice number INV-1001 is not in the ledger yet",
    ]
    entry = results["post_entry"][1]
    assert entry == {
        "entry_id": entry["entry_id"],
        "invoice_number": "INV-1001",
        "currency": "EUR",
        "total": 1567.8,
    }
    assert results["post_lines"][1] == {"entry_id": entry["entry_id"], "lines": 3, "amount": 1306.5}


def test_the_ledger_holds_the_entry_and_its_lines_with_the_right_totals(happy, ledger_db):
    headers, lines = ledger_rows(ledger_db, "INV-1001")
    assert len(headers) == 1, headers
    header = headers[0]
    assert header["id"] == happy["results"]["post_entry"][1]["entry_id"]
    assert {
        k: header[k] for k in ("vendor", "currency", "subtotal", "tax_rate", "tax", "total", "source_file")
    } == {
        "vendor": "Northwind Office Supply Ltd",
        "currency": "EUR",
        "subtotal": Decimal("1306.50"),
        "tax_rate": Decimal("20.00"),
        "tax": Decimal("261.30"),
        "total": Decimal("1567.80"),
        "source_file": "northwind_INV-1001.pdf",
    }
    assert header["invoice_date"].isoformat() == "2026-10-03"
    assert header["run_id"] == happy["run"].run_id
    assert [(x["line_no"], x["description"], x["quantity"], x["unit_price"], x["amount"]) for x in lines] == [
        (1, "Ergonomic office chair", Decimal("4.00"), Decimal("189.00"), Decimal("756.00")),
        (2, "Standing desk frame", Decimal("2.00"), Decimal("240.50"), Decimal("481.00")),
        (3, "Cable management kit", Decimal("10.00"), Decimal("6.95"), Decimal("69.50")),
    ]
    assert sum(x["amount"] for x in lines) + header["tax"] == header["total"]


def test_posting_is_an_effect_done_once_per_step(happy):
    done = [(e.step, e.payload["action"]) for e in happy["events"] if e.type == "effect.done"]
    assert done == [("post_entry", "ledger.post_entry"), ("post_lines", "ledger.post_lines")]
    assert "effect.reused" not in _types(happy["events"])


# --- 2. the same invoice again -----------------------------------------------------------------------


def test_an_invoice_already_in_the_ledger_is_refused_as_a_duplicate(happy, duplicate, ledger_db):
    run = duplicate["run"]
    assert run.state == "failed"
    assert run.task_states == {
        "extract": "success",
        "validate": "failed",
        "approve": "upstream_failed",
        "post_entry": "upstream_failed",
        "post_lines": "upstream_failed",
        "_compensate": "failed",  # the saga: nothing was posted, so nothing to undo; the run fails
    }
    entry = happy["results"]["post_entry"][1]["entry_id"]
    message = (
        "invoice northwind_INV-1001.pdf (INV-1001) is invalid: invoice_number: INV-1001 is already in the "
        f"ledger (entry {entry}, Northwind Office Supply Ltd, posted by run {happy['run'].run_id})"
    )
    (failed,) = [e for e in duplicate["events"] if e.type == "step.failed" and e.step == "validate"]
    assert (failed.step, failed.try_number) == ("validate", 1)  # an invalid invoice is not retried
    assert message in failed.payload["error"], failed.payload
    assert len(ledger_rows(ledger_db, "INV-1001")[0]) == 1


# --- 3. above the threshold, approved ----------------------------------------------------------------


def test_an_invoice_above_the_threshold_waits_for_a_person_who_approves_it(approved, ledger_db):
    run, results = approved["run"], approved["results"]
    assert run.state == "success", approved["output"][-4000:]
    assert run.task_states == {step: "success" for step in STEPS[:-1]} | {"_compensate": "skipped"}
    assert results["extract"][1] == CONTOSO
    assert results["validate"][1]["needs_approval"] is True
    asked = approved["asked"]
    assert asked["options"] == ["Approve", "Use the output below", "Reject"]
    assert asked["subject"] == "Approve an invoice above the approval threshold"
    note = (
        "Contoso Cloud Services Inc. CT-2026-0457: USD 7,603.20 is above the approval threshold of 5,000.00"
    )
    assert asked["params"]["approved"]["value"] is True
    assert asked["params"]["note"]["value"] == note
    assert results["approve"][1] == {"approved": True, "note": note}
    answered = [e.payload for e in approved["events"] if e.type == "approval.answered"]
    assert [(a["chosen"], a["by"]) for a in answered] == [(["Approve"], "ap.lead")]

    headers, lines = ledger_rows(ledger_db, "CT-2026-0457")
    assert [(h["vendor"], h["currency"], h["subtotal"], h["tax"], h["total"]) for h in headers] == [
        ("Contoso Cloud Services Inc.", "USD", Decimal("7040.00"), Decimal("563.20"), Decimal("7603.20"))
    ]
    assert [(x["description"], x["amount"]) for x in lines] == [
        ("Cloud hosting (October)", Decimal("4200.00")),
        ("Managed database", Decimal("1700.00")),
        ("Support hours", Decimal("1140.00")),
    ]


# `baton approve` got wrong first, as a hurried person would (issue 17): each refused, nothing answered.
HURRIED = [
    ["--show"],
    ["--option", "Approved"],
    ["--option", "Approve", "--field", "amount=12"],
    ["--option", "Approve", "--field", "note"],
    ["--option", "Approve", "--map-index", "3"],
    ["--option", "Approve", *[arg for i in range(101) for arg in ("--field", f"f{i}=1")]],
    ["--option", "Approve", "--field", "note=" + "x" * 100_001],
]


def test_baton_approve_refuses_a_wrong_answer_and_says_what_is_right(approved, capsys):
    (show, option, field, malformed, index, many, huge) = approved["attempts"]
    run_id = approved["run_id"]
    assert (
        show[0] == 0
        and f"{DAG_ID} / {run_id} / approve: Approve an invoice above the approval threshold" in show[1]
    )
    assert "waiting; options: Approve, Use the output below, Reject; fields: approved, note" in show[1]
    assert option == (
        1,
        "baton approve: unknown option 'Approved': the options are 'Approve', 'Use the output below', 'Reject'\n",
    )
    assert field == (1, "baton approve: unknown field 'amount': the fields are approved, note\n")
    assert malformed[0] == 2 and "'note' is not key=value: write e.g. --field amount=1200" in malformed[1]
    assert index == (1, f"baton approve: no step 'approve' (map index 3) in run {run_id}: check the run id\n")
    assert many == (2, "baton approve: at most 100 --field values\n")
    assert huge[0] == 2 and "the value of note is over 100,000 characters" in huge[1]
    # Answered once: a second answer is refused with who gave the first.
    capsys.readouterr()
    assert baton(["approve", run_id, "approve", "--option", "Reject"]) == 1
    assert (
        capsys.readouterr().out
        == f"baton approve: step 'approve' of run {run_id} was already answered by ap.lead\n"
    )


# --- 4. above the threshold, rejected ----------------------------------------------------------------


def test_a_rejected_invoice_ends_without_posting(rejected, ledger_db):
    run = rejected["run"]
    assert run.state == "failed"
    assert run.task_states == {
        "extract": "success",
        "validate": "success",
        "approve": "failed",
        "post_entry": "upstream_failed",
        "post_lines": "upstream_failed",
        "_compensate": "failed",  # the saga: nothing was posted, so nothing to undo; the run fails
    }
    assert rejected["results"]["extract"][1]["format"] == "pdf"
    assert rejected["results"]["extract"][1]["total"] == 8875.2
    # The person is asked once: their rejection is final (no retry asks again).
    assert [e.try_number for e in rejected["events"] if e.type == "approval.requested"] == [1]
    failures = [
        (e.try_number, e.payload["error_class"], e.payload["error"], e.payload["will_retry"])
        for e in rejected["events"]
        if e.type == "step.failed" and e.step == "approve"
    ]
    assert len(failures) == 1, failures
    assert failures[0][:2] == (1, "PersonDecided") and failures[0][3] is False
    assert "Step 'approve': cfo chose 'Reject'" in failures[0][2]
    assert "step.retried" not in _types([e for e in rejected["events"] if e.step == "approve"])
    assert ledger_rows(ledger_db, "FB-88210") == ([], [])
    assert "effect.done" not in _types(rejected["events"])


# --- 5. a malformed invoice ------------------------------------------------------------------------


def test_a_malformed_invoice_fails_validation_naming_the_file_and_the_field(malformed, ledger_db):
    run = malformed["run"]
    assert run.state == "failed"
    assert run.task_states["validate"] == "failed"
    assert run.task_states["post_entry"] == "upstream_failed"
    message = (
        "invoice bad_tailspin_TS-0099.txt (TS-0099) is invalid: "
        "lines[1].amount: 3 x 25.00 = 75.00, not 80.00 (Drone rotor set)"
    )
    (failed,) = [e for e in malformed["events"] if e.type == "step.failed" and e.step == "validate"]
    assert failed.try_number == 1
    assert failed.payload["error"].endswith(message), failed.payload
    assert ledger_rows(ledger_db, "TS-0099") == ([], [])


def test_the_failure_alert_reaches_slack(malformed, slack):
    run = malformed["run"]
    alerts = [post["text"] for post in slack.posts if run.run_id in post["text"]]
    assert len(alerts) == 1, slack.posts
    assert "*Workflow:* `invoice_processing`" in alerts[0] and "*Step:* `validate`" in alerts[0]
    assert "*Error class:* `InvalidInvoice`" in alerts[0], alerts[0]
    (raised,) = [e for e in malformed["events"] if e.type == "alert.raised"]
    assert raised.payload["delivered"] is True and raised.payload["step"] == "validate"


# --- 6. posting fails midway ----------------------------------------------------------------------


def test_posting_failing_midway_is_compensated_and_the_posted_rows_are_removed(saga, ledger_db):
    run, events = saga["run"], saga["events"]
    assert run.state == "failed"
    assert run.task_states == {
        "extract": "success",
        "validate": "success",
        "approve": "skipped",
        "post_entry": "success",
        "post_lines": "failed",
        "_compensate": "failed",
    }
    # The lines were posted once (try 1); the retries reused that post, then failed anyway.
    assert [(e.step, e.try_number) for e in events if e.type == "effect.done"] == [
        ("post_entry", 1),
        ("post_lines", 1),
    ]
    assert [(e.step, e.try_number) for e in events if e.type == "effect.reused"] == [
        ("post_lines", 2),
        ("post_lines", 3),
    ]
    assert "injected failure of step 'post_lines' after its call (try 3" in saga["output"]
    entry = saga["results"]["post_entry"][1]["entry_id"]
    (started,) = [e.payload for e in events if e.type == "saga.started"]
    assert (started["failed_steps"], started["plan"]) == (["post_lines"], ["post_entry"])
    done = [e.payload["target"] for e in events if e.type == "compensation.succeeded"]
    assert done == ["post_entry"]
    (completed,) = [e.payload for e in events if e.type == "saga.completed"]
    assert (completed["outcome"], completed["compensated"], completed["failed"]) == (
        "compensated",
        ["post_entry"],
        [],
    )
    assert ledger_rows(ledger_db, "LW-3307") == ([], [])
    from demo.ledger import ledger_lines

    engine = create_engine(ledger_db)
    with engine.connect() as conn:
        assert conn.execute(select(ledger_lines).where(ledger_lines.c.entry_id == entry)).all() == []
    engine.dispose()


# --- extraction without Airflow ----------------------------------------------------------------------


def _extract(name: str) -> dict:
    return extract_invoice(SkillRequest("invoice_processing", "extract", "", {"invoice": name}))


def test_an_invoice_without_a_total_names_the_file_and_the_field():
    with pytest.raises(InvalidInvoice) as failed:
        _extract("bad_adatum_AD-551.txt")
    assert str(failed.value) == "invoice bad_adatum_AD-551.txt: no total found (a line 'Total: ...')"


def test_an_invoice_outside_the_demo_folder_is_refused():
    with pytest.raises(InvalidInvoice) as failed:
        _extract("../ledger.py")
    assert str(failed.value) == (
        "invoice '../ledger.py': give the name of a file in include/demo/invoices, not a path"
    )


def test_the_committed_pdfs_are_what_make_pdfs_writes():
    from demo.invoices.make_pdfs import INVOICES, render

    for invoice in INVOICES:
        assert (INVOICES_DIR / invoice["file"]).read_bytes() == render(invoice), invoice["file"]
