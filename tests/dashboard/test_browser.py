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


def test_admin_server_dashboard(driver: WebDriver, db_url: str, tmp_path: Path) -> None:
    """An app without a web framework: the admin server's dashboard, behind its token."""
    port = free_port()
    token = uuid.uuid4().hex
    base = f"http://127.0.0.1:{port}/dashboard"
    env = {"DASH_DB_URL": db_url, "DASH_ADMIN_PORT": str(port), "DASH_ADMIN_TOKEN": token}

    def refused(d: WebDriver) -> None:
        wait_until(d, lambda d: "/dashboard/login" in d.current_url, "sent to the login form")
        assert d.find_element(By.CSS_SELECTOR, "label[for=token]").text == "Admin token"
        assert httpx.post(f"{base}/workflows/x/cancel").status_code == 401
        d.find_element(By.ID, "token").send_keys("not-the-token")
        d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until(d, lambda d: "not the admin token" in d.page_source, "a wrong token is refused")

    def sign_in(d: WebDriver) -> None:
        d.get(f"{base}/workflows")
        d.find_element(By.ID, "token").send_keys(token)
        d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until(d, lambda d: d.current_url.endswith("/dashboard/workflows"), "signed in")

    args = ["-m", "tests.dashboard.apps.admin_app"]
    ready = f"http://127.0.0.1:{port}/health"
    with (
        server(args, ready, tmp_path / "app.log", env),
        DBOSClient(system_database_url=db_url) as client,
    ):
        start_waiting, approve, start_finishing = scenario.queue_mount_functions(client)
        scenario.run(
            driver,
            scenario.Mount(
                "admin",
                base,
                refused,
                sign_in,
                start_waiting,
                approve,
                start_finishing,
                client,
                tmp_path,
            ),
        )


def test_flask_blueprint(driver: WebDriver, db_url: str, tmp_path: Path) -> None:
    """The Flask blueprint behind Flask-Login: anonymous sent to log in, a customer
    refused, staff allowed."""
    port = free_port()
    password = uuid.uuid4().hex
    base = f"http://127.0.0.1:{port}"
    env = {"DASH_DB_URL": db_url, "DASH_PORT": str(port), "DASH_PASSWORD": password}

    def log_in(d: WebDriver, user: str) -> None:
        d.get(f"{base}/login")
        d.find_element(By.ID, "username").send_keys(user)
        d.find_element(By.ID, "password").send_keys(password)
        d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    def refused(d: WebDriver) -> None:
        wait_until(
            d, lambda d: d.current_url.startswith(f"{base}/login"), "sent to Flask-Login's view"
        )
        assert httpx.get(f"{base}/dbos/workflows").status_code == 302

    def forbidden(d: WebDriver) -> None:
        log_in(d, "customer")
        wait_until(d, lambda d: "Forbidden" in d.page_source, "a customer is refused (403)")

    def sign_in(d: WebDriver) -> None:
        log_in(d, "staff")
        wait_until(d, lambda d: d.current_url.endswith("/dbos/workflows"), "signed in")

    args = ["-m", "tests.dashboard.apps.flask_app"]
    with (
        server(args, f"{base}/login", tmp_path / "app.log", env),
        DBOSClient(system_database_url=db_url) as client,
    ):
        start_waiting, approve, start_finishing = scenario.queue_mount_functions(client)
        scenario.run(
            driver,
            scenario.Mount(
                "flask",
                f"{base}/dbos",
                refused,
                sign_in,
                start_waiting,
                approve,
                start_finishing,
                client,
                tmp_path,
                assert_forbidden=forbidden,
            ),
            full=False,
        )


def test_django_urls(driver: WebDriver, db_url: str, tmp_path: Path) -> None:
    """Django's URLs for staff: anonymous sent to the admin login, a non-staff user
    refused, staff allowed; the Django admin's workflow list links to the dashboard."""
    port = free_port()
    password = uuid.uuid4().hex
    base = f"http://127.0.0.1:{port}"
    env = {
        "DASH_DB_URL": db_url,
        "DASH_PORT": str(port),
        "DASH_PASSWORD": password,
        "DASH_DJANGO_DB": str(tmp_path / "django.sqlite3"),
    }

    def log_in(d: WebDriver, user: str) -> None:
        d.get(f"{base}/admin/login/?next=/dbos/workflows")
        d.find_element(By.ID, "id_username").send_keys(user)
        d.find_element(By.ID, "id_password").send_keys(password)
        d.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    def refused(d: WebDriver) -> None:
        wait_until(d, lambda d: "/admin/login/" in d.current_url, "sent to the admin login")

    def forbidden(d: WebDriver) -> None:
        # Signed in through the site's own login (the admin's refuses non-staff users).
        d.get(f"{base}/accounts/login/?next=/dbos/workflows")
        d.find_element(By.ID, "id_username").send_keys("customer")
        d.find_element(By.ID, "id_password").send_keys(password)
        d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_until(
            d, lambda d: "403 Forbidden" in d.page_source, "a user who is not staff gets 403"
        )
        assert d.current_url.endswith("/dbos/workflows")

    def sign_in(d: WebDriver) -> None:
        log_in(d, "staff")
        wait_until(d, lambda d: d.current_url.endswith("/dbos/workflows"), "signed in")
        d.get(f"{base}/admin/dbos_django/workflow/")
        link = d.find_element(By.ID, "dbos-dashboard-link")
        assert link.get_attribute("href") == f"{base}/dbos/workflows"

    args = ["-m", "tests.dashboard.apps.django_site.serve"]
    with (
        server(args, f"{base}/admin/login/", tmp_path / "app.log", env),
        DBOSClient(system_database_url=db_url) as client,
    ):
        start_waiting, approve, start_finishing = scenario.queue_mount_functions(client)
        scenario.run(
            driver,
            scenario.Mount(
                "django",
                f"{base}/dbos",
                refused,
                sign_in,
                start_waiting,
                approve,
                start_finishing,
                client,
                tmp_path,
                assert_forbidden=forbidden,
            ),
            full=False,
        )
