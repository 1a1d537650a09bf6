"""The dashboard in a real browser, through every mount, against real server processes.

One browser session serves the whole module (Chromium starts once). Screenshots of
every page are saved in each test's temporary directory and checked not to be blank.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from dbos_core import DBOSClient

from . import scenario
from .browser import start_browser, wait_until
from .servers import free_port, server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    browser = start_browser()
    yield browser
    browser.quit()


def test_fastapi_shop_example(driver: WebDriver, db_url: str, tmp_path: Path) -> None:
    """The FastAPI example app, served by uvicorn, with its dashboard at /dbos."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    password = uuid.uuid4().hex
    env = {"DBOS_SYSTEM_DATABASE_URL": db_url, "SHOP_STAFF_PASSWORD": password}

    def refused(d: WebDriver) -> None:
        assert "Sign in to see the DBOS dashboard" in d.find_element(By.TAG_NAME, "body").text
        assert httpx.get(f"{base}/dbos/workflows").status_code == 401

    def sign_in(d: WebDriver) -> None:
        d.get(f"{base}/staff/login")
        d.find_element(By.ID, "password").send_keys(password)
        d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until(d, lambda d: d.current_url.endswith("/dbos/workflows"), "signed in")

    def start_waiting() -> str:
        # 9 books cost more than the approval threshold: the checkout waits for approval.
        placed = httpx.post(
            f"{base}/orders", json={"items": {"book": 9}}, headers={"x-customer": "ada"}
        )
        assert placed.status_code == 202, placed.text
        return str(placed.json()["order_id"])

    def approve(order_id: str) -> None:
        assert httpx.post(f"{base}/orders/{order_id}/approve").status_code == 200

    def start_finishing() -> str:
        done = httpx.post(f"{base}/checkout", json={"items": {"pen": 2}}, timeout=30)
        assert done.status_code == 200, done.text
        return str(done.json()["order_id"])

    args = ["-m", "example_projects.fastapi_shop", "--port", str(port)]
    with (
        server(args, f"{base}/staff/login", tmp_path / "shop.log", env),
        DBOSClient(system_database_url=db_url) as client,
    ):
        scenario.run(
            driver,
            scenario.Mount(
                name="fastapi",
                dashboard=f"{base}/dbos",
                assert_refused=refused,
                sign_in=sign_in,
                start_waiting=start_waiting,
                approve=approve,
                start_finishing=start_finishing,
                client=client,
                shots=tmp_path,
            ),
        )
