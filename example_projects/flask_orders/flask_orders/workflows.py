"""Checkout as a workflow: each step runs once, even across crashes and client retries."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dbos_core import DBOS, Queue

# Orders wait here for a worker thread; at most 4 run at once in each process.
orders_queue = Queue("orders", worker_concurrency=4)

# Steps run on DBOS worker threads, outside any Flask context: they get what they
# need from the module, set by the application factory.
_ledger: Path | None = None


def configure(ledger: Path) -> None:
    global _ledger
    _ledger = ledger


def record(event: str) -> None:
    """Append a side effect to the ledger (stands in for calls to other services)."""
    assert _ledger is not None, "create_app() configures the ledger"
    with open(_ledger, "a") as f:
        f.write(f"{event}\n")
        f.flush()
        os.fsync(f.fileno())


@DBOS.step()
def reserve_order_items(order_id: str, items: list[str]) -> list[str]:
    record(f"reserved {order_id} {','.join(items)}")
    return items


@DBOS.step(retries_allowed=True, max_attempts=3, interval_seconds=0.5)
def charge_order_payment(order_id: str, amount_cents: int) -> str:
    record(f"charged {order_id} {amount_cents}")
    return f"payment-{order_id}"


@DBOS.step()
def send_order_confirmation(order_id: str, user: str | None) -> None:
    record(f"confirmed {order_id} to {user or 'guest'}")


@DBOS.workflow()
def checkout_order(items: list[str]) -> dict[str, Any]:
    # The workflow ID is the order ID: the client's idempotency key when it sent one.
    order_id = DBOS.workflow_id or ""
    reserved = reserve_order_items(order_id, items)
    payment = charge_order_payment(order_id, 500 * len(reserved))
    send_order_confirmation(order_id, DBOS.authenticated_user)
    return {"order_id": order_id, "items": reserved, "payment": payment}
