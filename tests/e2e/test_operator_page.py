"""The operators' page in a real headless Chromium (Debian's `chromium` and
`chromium-driver`, driven by selenium): a reviewer approves a flagged order from the page
and sees it move on, live from the event stream."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from tests.helpers import events_of, order_json, wait_for_status
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(temporal_env, database_url, policy=OrderPolicy.instant()) as running:
        yield running


@contextmanager
def chromium() -> Iterator[WebDriver]:
    browser = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    # No skip: the page is tested in a real browser or the suite fails (.ci/run installs it).
    assert browser and driver_path, (
        "Debian's chromium and chromium-driver are needed: apt-get install -y chromium chromium-driver"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    with tempfile.TemporaryDirectory(prefix="orderflow-chromium-") as profile:
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
        try:
            yield driver
        finally:
            driver.quit()


def _text_is(driver: WebDriver, element_id: str, text: str, timeout: float = 30) -> None:
    WebDriverWait(driver, timeout).until(
        ec.text_to_be_present_in_element((By.ID, element_id), text)
    )


def approve_from_the_page(base_url: str, order_id: str) -> dict[str, object]:
    """What a reviewer does in the browser; returns what the page showed along the way."""
    seen: dict[str, object] = {}
    with chromium() as driver:
        wait = WebDriverWait(driver, 30)
        driver.get(f"{base_url}/ui/")
        token = wait.until(ec.presence_of_element_located((By.ID, "token")))
        token.send_keys("dev-reviewer")
        driver.find_element(By.ID, "save-token").click()
        _text_is(driver, "live", "live")

        # The risk team's queue lists the flagged order; its link opens the order.
        wait.until(ec.element_to_be_clickable((By.ID, "dept-risk"))).click()
        row = f'#queue tr[data-order-id="{order_id}"] a.order-link'
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, row))).click()
        _text_is(driver, "order-status", "PENDING_REVIEW")
        # The reasons render a moment after the status: wait for them, do not race them.
        wait.until(lambda d: d.find_element(By.ID, "risk-reasons").text.strip())
        seen["reasons"] = driver.find_element(By.ID, "risk-reasons").text
        # Beside them, the facts to decide with.
        _text_is(driver, "review-facts", "Customer history")
        seen["facts"] = driver.find_element(By.ID, "review-facts").text
        wait.until(ec.visibility_of_element_located((By.ID, "approve")))

        driver.find_element(By.ID, "note").send_keys("called the customer")
        driver.find_element(By.ID, "approve").click()
        # The page follows the order live: approved, then on through the steps to the end.
        _text_is(driver, "order-status", "COMPLETED", timeout=60)
        seen["timeline"] = [
            li.get_attribute("data-kind")
            for li in driver.find_elements(By.CSS_SELECTOR, "#timeline li")
        ]
        seen["timeline_text"] = driver.find_element(By.ID, "timeline").text
        seen["message"] = driver.find_element(By.ID, "message").text
        # ... and the risk queue, refreshed from the shop-wide stream, no longer lists it.
        WebDriverWait(driver, 30).until_not(
            ec.presence_of_element_located(
                (By.CSS_SELECTOR, f'#queue tr[data-order-id="{order_id}"]')
            )
        )
        seen["review_hidden"] = not driver.find_element(By.ID, "review").is_displayed()
        driver.save_screenshot(f"{tempfile.gettempdir()}/orderflow-operator-page.png")
    return seen


async def test_reviewer_approves_a_flagged_order_from_the_page(stack: Stack) -> None:
    body = order_json(payment_status="failed")
    order_id = body["order_id"]
    assert (await stack.http("POST", "/orders", json=body)).status_code == 202
    await wait_for_status(stack.pool, order_id, "PENDING_REVIEW")

    # The browser blocks while it works: keep it off the loop that serves the API.
    seen = await asyncio.to_thread(approve_from_the_page, str(stack.api.base_url), order_id)

    await wait_for_status(stack.pool, order_id, "COMPLETED")
    kinds = [e["kind"] for e in await events_of(stack.pool, order_id)]
    assert seen["timeline"] == kinds, "the page showed every event, in order"
    assert "review_approved" in kinds
    decided = [e for e in await events_of(stack.pool, order_id) if e["kind"] == "review_approved"]
    assert decided[0]["actor"] == "reviewer"
    assert "called the customer" in str(seen["timeline_text"])
    assert "approved" in str(seen["message"])
    assert seen["reasons"], "the page shows why the order was flagged"
    facts = str(seen["facts"])
    assert "Lines · total 25.00 EUR" in facts and "2 × SKU-RED-MUG" in facts
    assert "payment card failed 25.00" in facts and "ship to Ann Lee" in facts
    assert "0 other order(s) for nothing; first never" in facts
    assert seen["review_hidden"]


async def test_page_is_served_without_a_build_step(stack: Stack) -> None:
    page = await stack.http("GET", "/ui/", role=None)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="app.js">' in page.text
    script = await stack.http("GET", "/ui/app.js", role=None)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert (await stack.http("GET", "/ui/secrets.txt", role=None)).status_code == 404
    redirect = await stack.http("GET", "/ui", role=None, follow_redirects=False)
    assert redirect.status_code == 307 and redirect.headers["location"] == "/ui/"


def raise_from_the_page(base_url: str, description: str) -> str:
    """What a warehouse operator does: raise a difficulty with step 5; the page's answer."""
    with chromium() as driver:
        wait = WebDriverWait(driver, 30)
        driver.get(f"{base_url}/ui/")
        token = wait.until(ec.presence_of_element_located((By.ID, "token")))
        token.send_keys("dev-warehouse")
        driver.find_element(By.ID, "save-token").click()
        _text_is(driver, "live", "live")
        driver.find_element(By.CSS_SELECTOR, '#issue-step option[value="5"]').click()
        driver.find_element(By.CSS_SELECTOR, '#issue-severity option[value="high"]').click()
        driver.find_element(By.ID, "issue-description").send_keys(description)
        driver.find_element(By.ID, "raise-issue").click()
        _text_is(driver, "message", "raised with warehouse")
        return str(driver.find_element(By.ID, "message").text)


async def test_an_operator_raises_a_process_difficulty_from_the_page(stack: Stack) -> None:
    description = "the pick list sorts by SKU, not by aisle"
    message = await asyncio.to_thread(raise_from_the_page, str(stack.api.base_url), description)
    ticket_id = message.split()[2]
    issue = await stack.pool.fetchrow(
        "SELECT step, department, severity, description, raised_by FROM process_issues "
        "WHERE ticket_id = $1",
        ticket_id,
    )
    assert issue is not None, message
    assert (issue["step"], issue["department"], issue["severity"]) == (5, "warehouse", "high")
    assert issue["description"] == description and issue["raised_by"] == "warehouse"
    queue = await stack.http("GET", "/departments/warehouse/queue", role="warehouse")
    assert ticket_id in {item["ref"] for item in queue.json()["items"]}
