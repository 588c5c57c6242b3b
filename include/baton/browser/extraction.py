"""What a browser reads of a page: an ``extract`` of a declared step (text, all texts, a table, an
attribute), and the view a model reads (``read_page``: text, links, form fields)."""

from __future__ import annotations

from typing import Any

from baton.browser import ActionFailed

# The rows of a <table> (the selector may also name an element holding one): the header is the last
# row of <thead>, else the first row; every other row is a record.
TABLE_JS = """(node) => {
  const table = node.tagName === "TABLE" ? node : node.querySelector("table");
  if (!table) throw new Error("the element is a <" + node.tagName.toLowerCase() + ">, not a <table>");
  const rows = Array.from(table.rows);
  const head = table.tHead && table.tHead.rows.length ? table.tHead.rows[table.tHead.rows.length - 1] : rows[0];
  const text = (row) => Array.from(row.cells).map((cell) => cell.innerText.trim());
  return {
    header: head ? text(head) : [],
    rows: rows.filter((row) => row !== head && !(table.tHead && table.tHead.contains(row))).map(text),
  };
}"""

# What a model reads of a page: its text, its links, and the fields and buttons it can use.
PAGE_JS = """() => {
  const selectorOf = (el) => el.id ? "#" + CSS.escape(el.id)
    : el.name ? el.tagName.toLowerCase() + "[name=\\"" + el.name + "\\"]" : null;
  const labelOf = (el) => (el.labels && el.labels.length ? el.labels[0].innerText
    : el.getAttribute("aria-label") || el.getAttribute("placeholder") || el.innerText || "").trim();
  const fields = Array.from(document.querySelectorAll("input, select, textarea, button"))
    .filter((el) => el.type !== "hidden")
    .map((el) => ({
      selector: selectorOf(el), tag: el.tagName.toLowerCase(), type: el.type || "",
      label: labelOf(el).slice(0, 80),
      options: el.tagName === "SELECT" ? Array.from(el.options).map((o) => o.value) : undefined,
    }));
  const links = Array.from(document.querySelectorAll("a[href]"))
    .map((a) => ({ text: a.innerText.trim().slice(0, 100), href: a.href }));
  return { title: document.title, text: document.body ? document.body.innerText : "", links, fields };
}"""


def table_records(header: list[str], rows: list[list[str]]) -> list[dict[str, str]]:
    """Rows as objects keyed by the header cells (an empty or repeated header cell gets ``column_<n>``
    or a ``_<n>`` suffix; a missing cell is ``""``)."""
    keys: list[str] = []
    for number, cell in enumerate(header, start=1):
        key = cell or f"column_{number}"
        keys.append(key if key not in keys else f"{key}_{number}")
    width = max([len(keys), *(len(row) for row in rows)]) if rows else len(keys)
    keys += [f"column_{n}" for n in range(len(keys) + 1, width + 1)]
    return [{key: row[i] if i < len(row) else "" for i, key in enumerate(keys)} for row in rows]


async def extract(page: Any, selector: str, kind: str = "text", attribute: str | None = None) -> Any:
    """The value of an ``extract`` of ``kind`` on the first element ``selector`` matches (``all_text``:
    every element's)."""
    locator = page.locator(selector)
    if kind == "text":
        return (await locator.first.inner_text()).strip()
    if kind == "all_text":  # does not wait: an empty list is an answer (wait_for first if it loads late)
        return [text.strip() for text in await locator.all_inner_texts()]
    if kind == "table":
        found = await locator.first.evaluate(TABLE_JS)
        return table_records(found["header"], found["rows"])
    if kind == "attribute":
        if not attribute:
            raise ActionFailed("an extract of kind attribute names its attribute")
        value = await locator.first.get_attribute(attribute)
        if value is None:
            raise ActionFailed(f"the element has no attribute '{attribute}'")
        return value
    raise ActionFailed(f"unknown extract kind '{kind}'")


async def read_page(page: Any, text_limit: int = 4000, link_limit: int = 60) -> dict[str, Any]:
    """Title, URL, visible text (at most ``text_limit`` characters), links and form fields."""
    found = await page.evaluate(PAGE_JS)
    lines = (" ".join(line.split()) for line in found["text"].splitlines())
    text = "\n".join(line for line in lines if line)
    more = len(text) > text_limit
    return {
        "title": found["title"],
        "url": page.url,
        "text": text[:text_limit] + (f" [... {len(text) - text_limit} more characters]" if more else ""),
        "links": found["links"][:link_limit],
        "fields": [f for f in found["fields"] if f["selector"]][:link_limit],
    }
