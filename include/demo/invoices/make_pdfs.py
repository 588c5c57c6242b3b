"""Write the demo PDF invoices of this folder (committed; rerun after changing the data below).

    .venv/bin/python include/demo/invoices/make_pdfs.py

Each PDF is laid out as a vendor's invoice would be (a header, a table of line items, totals), with
fpdf2; the ``invoice_processing`` workflow reads them back with pypdf. The output is byte-for-byte
repeatable (a fixed creation date).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

HERE = Path(__file__).resolve().parent
CREATED = datetime(2026, 11, 1, tzinfo=UTC)

INVOICES = [
    {
        "file": "northwind_INV-1001.pdf",
        "vendor": "Northwind Office Supply Ltd",
        "address": "12 Wharf Road, Dublin",
        "number": "INV-1001",
        "date": "3 October 2026",
        "currency": "EUR",
        "lines": [
            ("Ergonomic office chair", "4", "189.00", "756.00"),
            ("Standing desk frame", "2", "240.50", "481.00"),
            ("Cable management kit", "10", "6.95", "69.50"),
        ],
        "subtotal": "1,306.50",
        "tax_label": "Tax (20%)",
        "tax": "261.30",
        "total": "EUR 1,567.80",
    },
    {
        "file": "fabrikam_FB-88210.pdf",
        "vendor": "Fabrikam Print Solutions plc",
        "address": "4 Mill Lane, Leeds",
        "number": "FB-88210",
        "date": "14/11/2026",
        "currency": "GBP",
        "lines": [
            ("Industrial printer", "1", "6,500.00", "6,500.00"),
            ("Toner cartridges", "8", "112.00", "896.00"),
        ],
        "subtotal": "7,396.00",
        "tax_label": "Tax (20%)",
        "tax": "1,479.20",
        "total": "GBP 8,875.20",
    },
]

WIDTHS = (90, 20, 35, 35)  # description, qty, unit price, amount (mm)


def render(invoice: dict) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_creation_date(CREATED)
    pdf.set_title(f"Invoice {invoice['number']}")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 10, "INVOICE", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    for label, value in (
        ("Vendor", invoice["vendor"]),
        ("Address", invoice["address"]),
        ("Invoice number", invoice["number"]),
        ("Date", invoice["date"]),
        ("Currency", invoice["currency"]),
    ):
        pdf.cell(0, 7, f"{label}: {value}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(5)
    pdf.set_font("Helvetica", "B", 11)
    for width, title, align in zip(
        WIDTHS, ("Description", "Qty", "Unit price", "Amount"), "LRRR", strict=True
    ):
        pdf.cell(width, 8, title, border="B", align=align)
    pdf.ln()
    pdf.set_font("Helvetica", "", 11)
    for line in invoice["lines"]:
        for width, text, align in zip(WIDTHS, line, "LRRR", strict=True):
            pdf.cell(width, 7, text, align=align)
        pdf.ln()
    pdf.ln(4)
    for label, value in (
        ("Subtotal", invoice["subtotal"]),
        (invoice["tax_label"], invoice["tax"]),
        ("Total", invoice["total"]),
    ):
        pdf.cell(sum(WIDTHS[:3]), 7, f"{label}:", align="R")
        pdf.cell(WIDTHS[3], 7, value, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("Helvetica", "I", 9)
    pdf.cell(0, 6, "Payment due within 30 days.")
    return bytes(pdf.output())


def main() -> None:
    for invoice in INVOICES:
        path = HERE / invoice["file"]
        path.write_bytes(render(invoice))
        print(f"wrote {path.relative_to(HERE.parents[2])}")


if __name__ == "__main__":
    main()
