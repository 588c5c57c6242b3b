"""Accounts-payable skills (``invoice_processing``): read an invoice (text or PDF), check its
arithmetic and that it was not posted before, and post it to the ledger in the business database.

Posting is two effects (the header, then the lines), each done once per run whatever the retries;
their compensations remove what was posted, so a run that fails after posting leaves no entry
behind. An invoice that is wrong fails its step at once (no retry turns it right), naming the file
and the field.
"""

# long: the invoice_processing workflow end to end (extraction, checks, ledger, compensation): one demo business area

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from baton.effects import effect
from baton.errors import FinalSkillError, SkillError
from baton.registry import SkillRequest, skill

INVOICES_DIR = Path(__file__).resolve().parents[2] / "demo" / "invoices"
BUSINESS_CONN_ID = "baton_business"
CENT = Decimal("0.01")


class InvalidInvoice(FinalSkillError):
    """The invoice is unreadable, wrong or not to be posted: the step fails without a retry."""


# --- models ---------------------------------------------------------------------------------------


class InvoiceLine(BaseModel):
    description: str
    quantity: float
    unit_price: float
    amount: float


class Invoice(BaseModel):
    file: str
    format: Literal["pdf", "text"]
    vendor: str
    invoice_number: str
    date: str  # ISO 8601
    currency: str
    lines: list[InvoiceLine]
    subtotal: float
    tax_rate: float  # percent
    tax: float
    total: float


class ValidatedInvoice(BaseModel):
    invoice: Invoice
    checks: list[str]
    approval_threshold: float
    needs_approval: bool


class LedgerEntry(BaseModel):
    entry_id: int
    invoice_number: str
    currency: str
    total: float


class LedgerLines(BaseModel):
    entry_id: int
    lines: int
    amount: float


class LedgerRemoval(BaseModel):
    entry_id: int
    entries_removed: int
    lines_removed: int


# --- reading --------------------------------------------------------------------------------------

AMOUNT = r"-?[\d,]*\d\.\d{2}"
FIELDS = {  # field -> (pattern over one line, the label the message names)
    "vendor": (r"Vendor:\s*(?P<v>\S.*?)", "Vendor"),
    "invoice_number": (r"Invoice (?:number|no\.?|#):?\s*(?P<v>\S+)", "Invoice number"),
    "date": (r"(?:Invoice )?Date:\s*(?P<v>\S.*?)", "Date"),
    "subtotal": (rf"Subtotal:\s*(?:[A-Z]{{3}}\s+)?(?P<v>{AMOUNT})", "Subtotal"),
    "tax": (
        rf"(?:Tax|VAT)\s*\((?P<rate>\d+(?:\.\d+)?)\s*%\):\s*(?:[A-Z]{{3}}\s+)?(?P<v>{AMOUNT})",
        "Tax (<rate>%)",
    ),
    "total": (rf"Total:\s*(?:(?P<cur>[A-Z]{{3}})\s+)?(?P<v>{AMOUNT})", "Total"),
}
CURRENCY = re.compile(r"^\s*Currency:\s*(?P<v>[A-Z]{3})\s*$", re.MULTILINE)
TABLE_HEADER = re.compile(r"^\s*Description\s+Qty\s+Unit price\s+Amount\s*$", re.IGNORECASE)
LINE_ITEM = re.compile(
    rf"^\s*(?P<description>\S.*?)\s+(?P<quantity>\d+(?:\.\d+)?)\s+(?P<unit_price>{AMOUNT})\s+"
    rf"(?P<amount>{AMOUNT})\s*$"
)
DATE_FORMATS = ("%Y-%m-%d", "%d %B %Y", "%d %b %Y", "%d/%m/%Y", "%B %d, %Y")


def invoice_path(name: str) -> Path:
    """The demo invoice ``name`` (a file name in include/demo/invoices)."""
    if not name or Path(name).name != name or name.startswith("."):
        raise InvalidInvoice(
            f"invoice {name!r}: give the name of a file in include/demo/invoices, not a path"
        )
    path = INVOICES_DIR / name
    if not path.is_file():
        known = sorted(p.name for p in INVOICES_DIR.iterdir() if p.suffix in (".txt", ".pdf"))
        raise InvalidInvoice(
            f"invoice {name}: no such file in include/demo/invoices (there: {', '.join(known)})"
        )
    return path


def invoice_text(path: Path) -> tuple[str, Literal["pdf", "text"]]:
    """The text of a PDF (every page, with pypdf) or of a text file."""
    if path.suffix.lower() == ".pdf":
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(path)
            return "\n".join(page.extract_text() or "" for page in reader.pages), "pdf"
        except (PdfReadError, ValueError) as error:
            raise InvalidInvoice(f"invoice {path.name}: not a readable PDF ({error})") from None
    try:
        return path.read_text(encoding="utf-8"), "text"
    except UnicodeDecodeError:
        raise InvalidInvoice(f"invoice {path.name}: not UTF-8 text") from None


def money(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def parse_date(text: str, file: str) -> str:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).date().isoformat()
        except ValueError:
            continue
    raise InvalidInvoice(f"invoice {file}: date {text!r} is not a date (e.g. 2026-10-31 or 3 October 2026)")


def parse_invoice(text: str, file: str, fmt: Literal["pdf", "text"]) -> Invoice:
    """The fields of an invoice's text; an ``InvalidInvoice`` names the file and the missing field."""
    found: dict[str, re.Match] = {}
    for field, (pattern, label) in FIELDS.items():
        match = re.search(rf"^\s*{pattern}\s*$", text, re.MULTILINE | re.IGNORECASE)
        if match is None:
            raise InvalidInvoice(f"invoice {file}: no {field} found (a line '{label}: ...')")
        found[field] = match
    total_currency = found["total"].group("cur")
    currency_line = CURRENCY.search(text)
    currency = currency_line.group("v") if currency_line else total_currency
    if currency is None:
        raise InvalidInvoice(
            f"invoice {file}: no currency found (a line 'Currency: EUR', or 'Total: EUR 1.00')"
        )
    if total_currency and total_currency != currency:
        raise InvalidInvoice(f"invoice {file}: currency is {currency} but the total is in {total_currency}")
    return Invoice(
        file=file,
        format=fmt,
        vendor=found["vendor"].group("v"),
        invoice_number=found["invoice_number"].group("v"),
        date=parse_date(found["date"].group("v"), file),
        currency=currency,
        lines=_line_items(text, file),
        subtotal=float(money(found["subtotal"].group("v"))),
        tax_rate=float(Decimal(found["tax"].group("rate"))),
        tax=float(money(found["tax"].group("v"))),
        total=float(money(found["total"].group("v"))),
    )


def _line_items(text: str, file: str) -> list[InvoiceLine]:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if TABLE_HEADER.match(line)), None)
    if start is None:
        raise InvalidInvoice(f"invoice {file}: no lines found (a table 'Description Qty Unit price Amount')")
    items = []
    for line in lines[start + 1 :]:
        if not line.strip() or re.match(r"^\s*Subtotal\b", line, re.IGNORECASE):
            break
        match = LINE_ITEM.match(line)
        if match is None:
            raise InvalidInvoice(
                f"invoice {file}: lines[{len(items) + 1}]: {line.strip()!r} is not "
                "'<description> <qty> <unit price> <amount>'"
            )
        items.append(
            InvoiceLine(
                description=match.group("description"),
                quantity=float(Decimal(match.group("quantity"))),
                unit_price=float(money(match.group("unit_price"))),
                amount=float(money(match.group("amount"))),
            )
        )
    if not items:
        raise InvalidInvoice(f"invoice {file}: no lines found under 'Description Qty Unit price Amount'")
    return items


@skill("extract_invoice", output=Invoice, pure=True)
def extract_invoice(request: SkillRequest) -> dict:
    """Read the invoice inputs.invoice (a text or PDF file of include/demo/invoices): its fields."""
    path = invoice_path(str(request.args.get("invoice", request.inputs.get("invoice", ""))))
    text, fmt = invoice_text(path)
    return parse_invoice(text, path.name, fmt).model_dump()


# --- checking -------------------------------------------------------------------------------------


def _d(value: float) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def _f(value: Decimal) -> str:
    return f"{value:,.2f}"


def _pct(value: Decimal) -> str:
    return f"{float(value):g}%"


def problems(invoice: Invoice, tax_rates: list[float]) -> tuple[list[str], list[str]]:
    """(what is wrong, what was checked) of an invoice's arithmetic: line amounts, subtotal, tax
    rate and amount, total. Money is exact (decimal), to the cent."""
    wrong, checked = [], []
    for n, line in enumerate(invoice.lines, 1):
        expected = (Decimal(str(line.quantity)) * _d(line.unit_price)).quantize(CENT, ROUND_HALF_UP)
        if expected != _d(line.amount):
            wrong.append(
                f"lines[{n}].amount: {line.quantity:g} x {_f(_d(line.unit_price))} = {_f(expected)}, "
                f"not {_f(_d(line.amount))} ({line.description})"
            )
    checked.append(f"{len(invoice.lines)} line amount(s) = qty x unit price")
    added = sum((_d(line.amount) for line in invoice.lines), Decimal("0.00"))
    if added != _d(invoice.subtotal):
        wrong.append(f"subtotal: the lines add up to {_f(added)}, not {_f(_d(invoice.subtotal))}")
    checked.append(f"subtotal {_f(_d(invoice.subtotal))} = the sum of the lines")
    rate = Decimal(str(invoice.tax_rate))
    allowed = sorted(Decimal(str(r)) for r in tax_rates)
    if rate not in allowed:
        wrong.append(f"tax_rate: {_pct(rate)} is not an allowed rate ({', '.join(_pct(r) for r in allowed)})")
    checked.append(f"tax rate {_pct(rate)} is allowed")
    tax = (_d(invoice.subtotal) * rate / 100).quantize(CENT, ROUND_HALF_UP)
    if tax != _d(invoice.tax):
        wrong.append(
            f"tax: {_pct(rate)} of {_f(_d(invoice.subtotal))} is {_f(tax)}, not {_f(_d(invoice.tax))}"
        )
    checked.append(f"tax {_f(_d(invoice.tax))} = {_pct(rate)} of the subtotal")
    total = _d(invoice.subtotal) + _d(invoice.tax)
    if total != _d(invoice.total):
        wrong.append(
            f"total: {_f(_d(invoice.subtotal))} + {_f(_d(invoice.tax))} = {_f(total)}, not {_f(_d(invoice.total))}"
        )
    checked.append(f"total {_f(_d(invoice.total))} = subtotal + tax")
    return wrong, checked


@skill("validate_invoice", output=ValidatedInvoice)
def validate_invoice(request: SkillRequest) -> dict:
    """Check the extracted invoice (steps.extract): arithmetic, tax rate, and that the ledger does
    not hold its invoice number yet; whether it needs a person's approval (inputs.approval_threshold)."""
    invoice = Invoice.model_validate(request.steps["extract"])
    rates = request.args.get("tax_rates", request.inputs.get("tax_rates", [0, 5, 7, 8, 10, 19, 20]))
    try:
        tax_rates = [float(r) for r in rates]
    except (TypeError, ValueError):
        raise SkillError(
            f"step '{request.step}': tax_rates must be a list of percentages, not {rates!r}"
        ) from None
    wrong, checked = problems(invoice, tax_rates)
    engine = ledger_engine(request)
    from demo.ledger import find_entry

    with engine.connect() as conn:
        posted = find_entry(conn, invoice.invoice_number)
    if posted and posted["run_id"] != request.run_id:  # a rerun of this run is not a duplicate
        wrong.append(
            f"invoice_number: {invoice.invoice_number} is already in the ledger "
            f"(entry {posted['id']}, {posted['vendor']}, posted by run {posted['run_id']})"
        )
    checked.append(f"invoice number {invoice.invoice_number} is not in the ledger yet")
    if wrong:
        raise InvalidInvoice(
            f"invoice {invoice.file} ({invoice.invoice_number}) is invalid: " + "; ".join(wrong)
        )
    threshold = float(request.args.get("approval_threshold", request.inputs.get("approval_threshold", 5000)))
    return ValidatedInvoice(
        invoice=invoice,
        checks=checked,
        approval_threshold=threshold,
        needs_approval=_d(invoice.total) > Decimal(str(threshold)),
    ).model_dump()


@skill("invoice_approval")
def invoice_approval(request: SkillRequest) -> dict:
    """The draft a person approves (escalate: human) for an invoice above the threshold (a person's
    Reject is final: the engine does not retry it)."""
    checked = ValidatedInvoice.model_validate(request.steps["validate"])
    invoice = checked.invoice
    return {
        "approved": True,
        "note": (
            f"{invoice.vendor} {invoice.invoice_number}: {invoice.currency} {_f(_d(invoice.total))} "
            f"is above the approval threshold of {_f(_d(checked.approval_threshold))}"
        ),
    }


# --- posting --------------------------------------------------------------------------------------


def ledger_engine(request: SkillRequest) -> Any:
    """The business database's engine (``with.conn_id``, default baton_business), its ledger tables
    created when missing."""
    from baton.errors import ConnectionNotDefined
    from baton.events.engine import engine_for
    from baton.hooks.business import database_url
    from demo.ledger import ensure_tables

    conn_id = str(request.args.get("conn_id") or BUSINESS_CONN_ID)
    try:
        url = database_url(conn_id, "the business database with the ledger")
    except (ConnectionNotDefined, ValueError) as error:
        raise SkillError(f"step '{request.step}': {error}") from None
    engine = engine_for(url)
    ensure_tables(engine)
    return engine


@skill("post_ledger_entry", output=LedgerEntry)
def post_ledger_entry(request: SkillRequest) -> dict:
    """Post the validated invoice's header to the ledger (once per run), if a person approved it or
    it needed no approval."""
    invoice = ValidatedInvoice.model_validate(request.steps["validate"]).invoice
    approval = request.steps.get("approve")
    if approval is not None and not approval.get("approved"):
        raise InvalidInvoice(
            f"invoice {invoice.file} ({invoice.invoice_number}): not approved"
            + (f" ({approval['note']})" if approval.get("note") else "")
            + "; nothing was posted"
        )
    engine = ledger_engine(request)
    entry_id = _post_entry(
        engine,
        {
            "invoice_number": invoice.invoice_number,
            "vendor": invoice.vendor,
            "invoice_date": date.fromisoformat(invoice.date),
            "currency": invoice.currency,
            "subtotal": _d(invoice.subtotal),
            "tax_rate": Decimal(str(invoice.tax_rate)),
            "tax": _d(invoice.tax),
            "total": _d(invoice.total),
            "source_file": invoice.file,
            "run_id": request.run_id,
        },
    )["entry_id"]
    return LedgerEntry(
        entry_id=entry_id,
        invoice_number=invoice.invoice_number,
        currency=invoice.currency,
        total=invoice.total,
    ).model_dump()


@effect("ledger.post_entry")
def _post_entry(engine: Any, values: dict[str, Any]) -> dict[str, int]:
    from sqlalchemy.exc import IntegrityError

    from demo.ledger import insert_entry

    try:
        with engine.begin() as conn:
            return {"entry_id": insert_entry(conn, values)}
    except IntegrityError:
        raise InvalidInvoice(
            f"invoice {values['source_file']} ({values['invoice_number']}): already in the ledger "
            "(posted by another run meanwhile)"
        ) from None


@skill("post_ledger_lines", output=LedgerLines)
def post_ledger_lines(request: SkillRequest) -> dict:
    """Post the invoice's line items under the entry step post_entry made (once per run)."""
    invoice = ValidatedInvoice.model_validate(request.steps["validate"]).invoice
    entry = LedgerEntry.model_validate(request.steps["post_entry"])
    lines = [
        {
            "line_no": n,
            "description": line.description,
            "quantity": Decimal(str(line.quantity)),
            "unit_price": _d(line.unit_price),
            "amount": _d(line.amount),
        }
        for n, line in enumerate(invoice.lines, 1)
    ]
    posted = _post_lines(ledger_engine(request), entry.entry_id, lines)
    return LedgerLines(
        entry_id=entry.entry_id, lines=posted["lines"], amount=float(sum(_d(x.amount) for x in invoice.lines))
    ).model_dump()


@effect("ledger.post_lines")
def _post_lines(engine: Any, entry_id: int, lines: list[dict[str, Any]]) -> dict[str, int]:
    from demo.ledger import insert_lines

    with engine.begin() as conn:
        return {"lines": insert_lines(conn, entry_id, lines)}


def _entry_id(request: SkillRequest) -> int:
    try:
        return int(request.args["entry_id"])
    except (KeyError, TypeError, ValueError, InvalidOperation):
        raise SkillError(
            f"step '{request.step}': give the entry to remove, with: {{entry_id: '{{{{ output.entry_id }}}}'}}"
        ) from None


@skill("void_ledger_entry", output=LedgerRemoval)
def void_ledger_entry(request: SkillRequest) -> dict:
    """Undo post_ledger_entry: remove the entry with.entry_id and every line posted under it."""
    from demo.ledger import delete_entry

    entry_id = _entry_id(request)
    with ledger_engine(request).begin() as conn:
        entries, lines = delete_entry(conn, entry_id)
    return LedgerRemoval(entry_id=entry_id, entries_removed=entries, lines_removed=lines).model_dump()


@skill("remove_ledger_lines", output=LedgerRemoval)
def remove_ledger_lines(request: SkillRequest) -> dict:
    """Undo post_ledger_lines: remove the lines of the entry with.entry_id (the header stays)."""
    from demo.ledger import delete_lines

    entry_id = _entry_id(request)
    with ledger_engine(request).begin() as conn:
        lines = delete_lines(conn, entry_id)
    return LedgerRemoval(entry_id=entry_id, entries_removed=0, lines_removed=lines).model_dump()
