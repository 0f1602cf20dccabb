"""The customer's order page in a real headless Chromium, for tests that open it from a link.

    async with order_page_browser(phone=True) as page:
        await page.open(order_page_url(base_url, order_id, token))  # e.g. the e-mail's link
        await page.wait_status("PICKING")
        assert "SKU-RED-MUG" in await page.text()

`OrderPage` is the blocking selenium side; `order_page_browser` hands it out wrapped so that
each call runs in a worker thread: the test's own event loop serves the API, the worker and
the carrier simulator, and must keep running while the browser waits for them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.e2e.test_operator_page import chromium

PHONE_WIDTH, PHONE_HEIGHT = 375, 812

# Records every status the page shows, so a test can tell it moved live (and, since a
# reload would lose the recorder, without a reload).
_RECORD_STATUSES = """
window.__statuses = [];
const badge = document.getElementById("order-status");
const note = () => {
  const s = badge.dataset.status;
  if (s && window.__statuses[window.__statuses.length - 1] !== s) window.__statuses.push(s);
};
note();
new MutationObserver(note).observe(badge, { attributes: true, attributeFilter: ["data-status"] });
"""


class OrderPage:
    """The order page open in one browser; every wait fails after `timeout` seconds."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    def open(self, url: str, *, timeout: float = 30) -> None:
        """Open `url` (the page's link, token in the fragment) and wait until the page has
        shown either the order or why not."""
        # From a blank page: a link to the page already open differs in its fragment only,
        # and the browser would not load it afresh.
        self.driver.get("about:blank")
        self.driver.get(url)
        WebDriverWait(self.driver, timeout).until(
            lambda d: (
                d.find_element(By.ID, "order").is_displayed()
                or "error" in (d.find_element(By.ID, "message").get_attribute("class") or "")
            )
        )

    def order_shown(self) -> bool:
        return self.driver.find_element(By.ID, "order").is_displayed()

    def status(self) -> str:
        return self.driver.find_element(By.ID, "order-status").get_attribute("data-status") or ""

    def wait_status(self, status: str, *, timeout: float = 60) -> None:
        try:
            WebDriverWait(self.driver, timeout).until(
                ec.text_to_be_present_in_element_attribute(
                    (By.ID, "order-status"), "data-status", status
                )
            )
        except Exception as exc:
            raise AssertionError(f"the page shows {self.status()!r}, not {status!r}") from exc

    def record_statuses(self) -> None:
        self.driver.execute_script(_RECORD_STATUSES)

    def recorded_statuses(self) -> list[str] | None:
        """What `record_statuses` saw since; None after a reload."""
        seen = self.driver.execute_script("return window.__statuses || null")
        return None if seen is None else [str(s) for s in seen]

    def wait_text(self, element_id: str, text: str, *, timeout: float = 30) -> str:
        try:
            WebDriverWait(self.driver, timeout).until(
                ec.text_to_be_present_in_element((By.ID, element_id), text)
            )
        except Exception as exc:
            raise AssertionError(
                f"#{element_id} shows {self.element_text(element_id)!r}, not {text!r}"
            ) from exc
        return self.element_text(element_id)

    def wait_visible(self, element_id: str, *, timeout: float = 30) -> None:
        WebDriverWait(self.driver, timeout).until(
            ec.visibility_of_element_located((By.ID, element_id))
        )

    def wait_hidden(self, element_id: str, *, timeout: float = 30) -> None:
        WebDriverWait(self.driver, timeout).until(
            ec.invisibility_of_element_located((By.ID, element_id))
        )

    def visible(self, element_id: str) -> bool:
        return self.driver.find_element(By.ID, element_id).is_displayed()

    def element_text(self, element_id: str) -> str:
        return str(self.driver.find_element(By.ID, element_id).text)

    def text(self) -> str:
        """Everything the page shows, as a person reads it."""
        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def html(self) -> str:
        """The whole document as it stands, hidden parts included."""
        return str(self.driver.execute_script("return document.documentElement.outerHTML"))

    def click(self, element_id: str, *, timeout: float = 30) -> None:
        WebDriverWait(self.driver, timeout).until(
            ec.element_to_be_clickable((By.ID, element_id))
        ).click()

    def fill(self, element_id: str, text: str) -> None:
        field = self.driver.find_element(By.ID, element_id)
        field.clear()
        field.send_keys(text)

    def choose(self, element_id: str, value: str) -> None:
        Select(self.driver.find_element(By.ID, element_id)).select_by_value(value)

    def choose_in(self, css: str, value: str) -> None:
        """Pick `value` in the select matched by `css`, for selects made per line (no id)."""
        Select(self.driver.find_element(By.CSS_SELECTOR, css)).select_by_value(value)

    def rate(self, stars: int) -> None:
        self.driver.find_element(By.CSS_SELECTOR, f'input[name="rating"][value="{stars}"]').click()

    def url(self) -> str:
        return str(self.driver.current_url)

    def run(self, script: str) -> Any:
        return self.driver.execute_script(script)

    def scroll_width(self) -> int:
        return int(self.driver.execute_script("return document.documentElement.scrollWidth"))

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """A PNG of the page; `full_page` captures below the fold too (at the same width)."""
        if full_page:
            shot = self.driver.execute_cdp_cmd(
                "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
            )
            path.write_bytes(base64.b64decode(shot["data"]))
        else:
            self.driver.save_screenshot(str(path))
        return path


class ThreadedOrderPage:
    """`OrderPage` with every method awaitable, run in a worker thread."""

    def __init__(self, page: OrderPage) -> None:
        self.page = page

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.page, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call


def _emulate_phone(driver: WebDriver) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": PHONE_WIDTH, "height": PHONE_HEIGHT, "deviceScaleFactor": 2, "mobile": True},
    )


@contextlib.asynccontextmanager
async def order_page_browser(*, phone: bool = False) -> AsyncIterator[ThreadedOrderPage]:
    """A headless Chromium for the order page; `phone`: a 375 x 812 mobile viewport."""
    browser = chromium()
    driver = await asyncio.to_thread(browser.__enter__)
    try:
        if phone:
            await asyncio.to_thread(_emulate_phone, driver)
        yield ThreadedOrderPage(OrderPage(driver))
    finally:
        await asyncio.to_thread(browser.__exit__, None, None, None)


@contextlib.asynccontextmanager
async def open_order_page(url: str, *, phone: bool = False) -> AsyncIterator[ThreadedOrderPage]:
    """The page at `url` (a link as a customer gets it), loaded, in a fresh browser."""
    async with order_page_browser(phone=phone) as page:
        await page.open(url)
        yield page
