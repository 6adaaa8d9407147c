"""A real browser for the gateway's web pages: Debian's chromium, headless, driven by Playwright.

`make test` installs chromium (apt-get) and Playwright (the dev extra); ``playwright
install`` is not needed: the browser is the system's, with a fresh profile per test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@asynccontextmanager
async def browser_page(profile: Path) -> AsyncIterator[Page]:
    """A page of a headless chromium with a new user-data-dir at ``profile``."""
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: 'make test' installs it (apt-get install chromium)")
    args = [*ARGS, *(["--no-sandbox"] if os.geteuid() == 0 else [])]
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            yield context.pages[0] if context.pages else await context.new_page()
        finally:
            await context.close()
