"""The files a browser keeps: a screenshot of the page, a file a click downloads; each saved in the
step's artifacts folder (:mod:`baton.browser.artifacts`) and recorded as ``artifact.saved``."""

from __future__ import annotations

import mimetypes
import re
from pathlib import PurePosixPath
from typing import Any

from baton.browser import ActionFailed
from baton.browser.artifacts import Artifacts
from baton.browser.journal import Journal

_EXT = re.compile(r"^[a-z0-9]{1,10}$")


def _folder(artifacts: Artifacts | None) -> Artifacts:
    if artifacts is None:
        raise ActionFailed("this step was given no artifacts folder to keep files in")
    return artifacts


async def screenshot(
    page: Any, artifacts: Artifacts | None, journal: Journal, name: str, *, full_page: bool = True
) -> str:
    """Save a PNG of the page as ``<name>.png``; its path relative to the artifacts root."""
    folder = _folder(artifacts)
    path = folder.path(name, "png")
    await page.screenshot(path=str(path), full_page=full_page)
    payload = folder.saved(name, "screenshot", path, "image/png")
    journal.emit("artifact.saved", payload)
    return payload["path"]


async def download(
    page: Any, artifacts: Artifacts | None, journal: Journal, name: str, selector: str, timeout_s: float
) -> str:
    """Click ``selector`` and keep the file it downloads as ``<name>.<its extension>``; the download
    must start within ``timeout_s``."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    folder = _folder(artifacts)
    locator = page.locator(selector)
    await locator.wait_for(state="visible")
    try:
        async with page.expect_download(timeout=timeout_s * 1000) as info:
            await locator.click()
        download = await info.value
    except PlaywrightTimeout as error:
        raise ActionFailed(
            f"no download started within the navigation_timeout of {timeout_s:g} s after the click; "
            "check that the selector names the link or button that downloads the file"
        ) from error
    failure = await download.failure()
    if failure:
        raise ActionFailed(f"the download failed: {failure}")
    suffix = PurePosixPath(download.suggested_filename or "").suffix.lstrip(".").lower()
    path = folder.path(name, suffix if _EXT.match(suffix) else "bin")
    await download.save_as(str(path))
    content_type = mimetypes.guess_type(download.suggested_filename or "")[0] or ""
    payload = folder.saved(name, "download", path, content_type)
    journal.emit("artifact.saved", payload)
    return payload["path"]
