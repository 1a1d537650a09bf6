"""The complete FastAPI example of the README runs as documented."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from dbos_core import DBOS
from tests.readme import readme_section

SECTION = readme_section("FastAPI")


@pytest.fixture()
def readme_app(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    code = re.findall(r"```python\n(.*?)```", SECTION, re.S)[0]
    path = tmp_path / "orders_readme.py"
    path.write_text(code)
    monkeypatch.setenv("DBOS_SYSTEM_DATABASE_URL", db_url)
    DBOS.destroy()
    spec = importlib.util.spec_from_file_location("orders_readme", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["orders_readme"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("orders_readme", None)
        DBOS.destroy()


def test_readme_example(readme_app: ModuleType) -> None:
    with TestClient(readme_app.app) as client:
        headers = {"dbos-idempotency-key": "cart-1", "x-customer": "ada", "x-request-id": "r-1"}
        first = client.post("/orders/500", headers=headers).json()
        again = client.post("/orders/500", headers=headers).json()
        assert (
            first
            == again
            == {
                "order_id": "cart-1",
                "payment": "charged 500 cents to ada",
                "request_id": "r-1",
            }
        )
        assert client.get("/orders/cart-1").json() == {"status": "SUCCESS", "customer": "ada"}
        guest = client.post("/orders/100").json()
        assert guest["order_id"] != "cart-1" and guest["payment"] == "charged 100 cents to guest"
        missing = client.get("/orders/unknown")
        assert missing.status_code == 404 and missing.json()["error"] == "NONEXISTENT_WORKFLOW"
