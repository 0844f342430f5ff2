"""One home for driving Debian's Chromium from tests: the binary, its flags, offline pages.

Playwright (python) drives ``/usr/bin/chromium`` through ``executable_path``; it never
downloads a browser. WebGL runs on SwiftShader, so ``<model-viewer>`` draws headless.
``offline_page`` blocks every request that leaves the page's own origin (``file:``, ``data:``,
``blob:`` and the ``allow`` prefixes pass) and records what it blocked: a page that reaches
for a CDN shows up in ``page.blocked``.
"""

from __future__ import annotations

import contextlib
import shutil
from typing import Iterator

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--use-gl=angle", "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader", "--hide-scrollbars"]


@contextlib.contextmanager
def launch() -> Iterator[object]:
    """A headless Chromium (Playwright ``Browser``); ``AssertionError`` saying how to install it when missing."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "needs Chromium: sudo apt-get install chromium (the Makefile's apt list)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def offline_page(browser: object, *, allow: tuple[str, ...] = (), width: int = 1280, height: int = 900) -> Iterator[object]:
    """A page whose requests outside ``file:``/``data:``/``blob:`` and ``allow`` are blocked; ``page.blocked`` lists them."""
    context = browser.new_context(viewport={"width": width, "height": height})  # type: ignore[attr-defined]
    page = context.new_page()
    page.blocked = []  # type: ignore[attr-defined]
    page.errors = []  # type: ignore[attr-defined]

    def route(request_route: object) -> None:
        url = request_route.request.url  # type: ignore[attr-defined]
        if url.startswith(("file:", "data:", "blob:", *allow)):
            request_route.continue_()  # type: ignore[attr-defined]
        else:
            page.blocked.append(url)  # type: ignore[attr-defined]
            request_route.abort()  # type: ignore[attr-defined]

    context.route("**/*", route)
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        context.close()
