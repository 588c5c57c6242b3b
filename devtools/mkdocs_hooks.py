"""MkDocs hook of the documentation site (mkdocs.yml `hooks:`): the Changelog page is CHANGELOG.md of the
repository's root, with its links into docs/ made relative to the page (`docs/upgrading.md` ->
`upgrading.md`), so that one file reads right on GitHub and in the site, and `--strict` checks its links."""

from __future__ import annotations

import re
from pathlib import Path

CHANGELOG_PAGE = "changelog.md"
DOCS_LINK = re.compile(r"(\]\(\s*)docs/")


def on_page_markdown(markdown: str, *, page, config, files) -> str:
    if page.file.src_uri != CHANGELOG_PAGE:
        return markdown
    changelog = Path(config.config_file_path).parent / "CHANGELOG.md"
    return DOCS_LINK.sub(r"\1", changelog.read_text(encoding="utf-8"))
