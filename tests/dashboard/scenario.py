"""The dashboard smoke test every mount goes through, in a real browser.

A ``Mount`` says how to reach one dashboard (the admin server's, or an app's through
its framework) and how to sign in there; ``run`` then does what an operator does:
is refused while anonymous, signs in, lists and filters workflows, watches a PENDING
one turn SUCCESS without a reload, opens one, cancels one, forks one from step 2,
and looks at the queues, schedules and health pages, at desktop and phone width, in
light and dark. Each page is saved as a screenshot and checked not to be blank.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from dbos_core import DBOSClient

from .browser import (
    WAIT,
    attribute,
    mark_page,
    no_horizontal_overflow,
    page_kept,
    screenshot,
    text_of,
    unlabeled_controls,
    wait_until,
)


@dataclass
class Mount:
    name: str
    # The dashboard's base URL, e.g. http://127.0.0.1:8000/dbos
    dashboard: str
    # Asserts that the browser, anonymous, was refused (it just opened the dashboard).
    assert_refused: Callable[[WebDriver], None]
    sign_in: Callable[[WebDriver], None]
    # Start a workflow that waits for approval; returns its ID.
    start_waiting: Callable[[], str]
    approve: Callable[[str], None]
    # Start a workflow that completes with at least two steps; returns its ID.
    start_finishing: Callable[[], str]
    client: DBOSClient
    shots: Path
    # Signs in as an authenticated user who may not see the dashboard and checks the
    # refusal (then signs out); None where every signed-in user is allowed.
    assert_forbidden: Callable[[WebDriver], None] | None = None


def status_of(client: DBOSClient, workflow_id: str) -> str | None:
    rows = client.list_workflows(workflow_ids=[workflow_id], load_input=False, load_output=False)
    return rows[0].status if rows else None


def wait_status(client: DBOSClient, workflow_id: str, *statuses: str) -> str:
    deadline = time.monotonic() + WAIT
    while True:
        status = status_of(client, workflow_id)
        if status in statuses:
            return status
        assert time.monotonic() < deadline, f"{workflow_id} is {status}, not {statuses}"
        time.sleep(0.05)


def row_status(driver: WebDriver, workflow_id: str) -> str | None:
    css = f'tr[data-wf="{workflow_id}"] [data-status]'
    return attribute(driver, css, "data-status")


def page_status(driver: WebDriver) -> str | None:
    return attribute(driver, "#wf-summary [data-status]", "data-status")


def click(driver: WebDriver, css: str) -> None:
    driver.find_element(By.CSS_SELECTOR, css).click()


def run(driver: WebDriver, mount: Mount, *, full: bool = True) -> None:
    """The whole tour; ``full=False`` stops after the cancel (the rest is the same core
    code whatever the mount, so one mount covers it)."""
    shot = mount.name
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.get(mount.dashboard + "/workflows")
    mount.assert_refused(driver)
    if mount.assert_forbidden is not None:
        mount.assert_forbidden(driver)
        driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    mount.sign_in(driver)

    finished = mount.start_finishing()
    wait_status(mount.client, finished, "SUCCESS")
    waiting, doomed = mount.start_waiting(), mount.start_waiting()
    for workflow_id in (waiting, doomed):
        wait_status(mount.client, workflow_id, "PENDING")

    # The list, then filtered to what is PENDING.
    driver.get(mount.dashboard + "/workflows")
    wait_until(
        driver,
        lambda d: row_status(d, finished) == "SUCCESS",
        "the list shows the finished workflow",
    )
    assert unlabeled_controls(driver) == []
    screenshot(driver, mount.shots, f"{shot}-list")
    Select(driver.find_element(By.ID, "f-status")).select_by_value("PENDING")
    click(driver, "form.filters button[type=submit]")
    wait_until(driver, lambda d: "status=PENDING" in d.current_url, "the filter was applied")
    shown = {
        r.get_attribute("data-wf") for r in driver.find_elements(By.CSS_SELECTOR, "tr[data-wf]")
    }
    assert {waiting, doomed} <= shown and finished not in shown
    statuses = {
        s.get_attribute("data-status")
        for s in driver.find_elements(By.CSS_SELECTOR, "tr[data-wf] [data-status]")
    }
    assert statuses == {"PENDING"}
    screenshot(driver, mount.shots, f"{shot}-filtered")

    # A PENDING row turns SUCCESS by itself: the page is not reloaded.
    mark_page(driver)
    wait_until(driver, lambda d: text_of(d, "#live-state") == "Live", "the live stream opened")
    mount.approve(waiting)
    wait_until(
        driver, lambda d: row_status(d, waiting) == "SUCCESS", "the approved row turned SUCCESS"
    )
    assert page_kept(driver), "the page was reloaded"
    assert row_status(driver, doomed) == "PENDING"
    screenshot(driver, mount.shots, f"{shot}-live")

    # Open a workflow from the list, and cancel it.
    driver.find_element(By.CSS_SELECTOR, f'tr[data-wf="{doomed}"] a').click()
    wait_until(driver, lambda d: page_status(d) == "PENDING", "the workflow's page opened")
    assert doomed in text_of(driver, "h1")
    assert driver.find_elements(By.CSS_SELECTOR, "#wf-timeline tbody tr"), "no step timeline"
    screenshot(driver, mount.shots, f"{shot}-detail")
    click(driver, '#wf-actions form[action$="/cancel"] button')
    wait_until(driver, lambda d: page_status(d) == "CANCELLED", "the page shows CANCELLED")
    assert "Workflow cancelled." in text_of(driver, ".notice")
    assert status_of(mount.client, doomed) == "CANCELLED"
    if not full:
        return

    # Fork the finished workflow from step 2, confirming first.
    driver.get(f"{mount.dashboard}/workflows/{quote(finished, safe='')}")
    wait_until(driver, lambda d: page_status(d) == "SUCCESS", "the finished workflow's page")
    Select(driver.find_element(By.ID, "fork-step")).select_by_value("2")
    click(driver, "form.fork button")
    wait_until(
        driver, lambda d: d.find_elements(By.CSS_SELECTOR, "section.confirm"), "the confirmation"
    )
    assert "step 2" in text_of(driver, "section.confirm h2")
    screenshot(driver, mount.shots, f"{shot}-fork")
    click(driver, "section.confirm button")
    wait_until(
        driver,
        lambda d: "Forked" in (attribute(d, ".notice", "textContent") or ""),
        "the fork opened",
    )
    forked = driver.current_url.rsplit("/workflows/", 1)[1].split("?")[0]
    assert forked != quote(finished, safe="")
    wait_until(driver, lambda d: page_status(d) == "SUCCESS", "the fork finished, shown live")
    link = driver.find_element(By.LINK_TEXT, finished)
    assert link.get_attribute("href").endswith(quote(finished, safe=""))
    status = mount.client.retrieve_workflow(forked).get_status()
    assert status.forked_from == finished and status.status == "SUCCESS"
    original_steps = mount.client.list_workflow_steps(finished)
    forked_steps = mount.client.list_workflow_steps(forked)
    assert forked_steps[0] == original_steps[0]  # step 1 was copied, not run again
    screenshot(driver, mount.shots, f"{shot}-forked")

    for page, title in (("queues", "Queues"), ("schedules", "Schedules"), ("health", "Health")):
        driver.get(f"{mount.dashboard}/{page}")
        wait_until(driver, lambda d, t=title: text_of(d, "h1") == t, f"the {page} page")
        if page == "queues":
            wait_until(
                driver,
                lambda d: d.find_elements(By.CSS_SELECTOR, "figure.chart canvas"),
                "the charts",
            )
        if page == "health":
            assert "reachable" in text_of(driver, "main")
        screenshot(driver, mount.shots, f"{shot}-{page}")

    # Phone width and dark mode.
    driver.set_window_size(390, 844)
    try:
        driver.get(mount.dashboard + "/workflows")
        wait_until(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-wf]"),
            "the list at phone width",
        )
        assert no_horizontal_overflow(driver), "the page is wider than a phone screen"
        screenshot(driver, mount.shots, f"{shot}-phone")
    finally:
        driver.set_window_size(1280, 900)
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    try:
        driver.get(f"{mount.dashboard}/workflows/{quote(finished, safe='')}")
        wait_until(driver, lambda d: page_status(d) == "SUCCESS", "the dark page")
        background = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 20, 24)", background
        screenshot(driver, mount.shots, f"{shot}-dark")
    finally:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def queue_mount_functions(
    client: DBOSClient,
) -> tuple[Callable[[], str], Callable[[str], None], Callable[[], str]]:
    """start_waiting, approve and start_finishing for the test apps (apps/workflows.py):
    jobs enqueued by the client, run by the app's process."""
    counter = iter(range(1, 1_000_000))
    options = {"queue_name": "dash_jobs", "workflow_name": "dash_job"}

    def start_waiting() -> str:
        return client.enqueue(options, next(counter), True).get_workflow_id()  # type: ignore[arg-type]

    def approve(workflow_id: str) -> None:
        client.send(workflow_id, "approved", "approval")

    def start_finishing() -> str:
        return client.enqueue(options, next(counter), False).get_workflow_id()  # type: ignore[arg-type]

    return start_waiting, approve, start_finishing
