"""Checkout as a workflow: each step runs once, even across crashes and client retries.

The two database steps are @DBOS.transaction functions on the app's Flask-SQLAlchemy
``db``: they write models through ``db.session`` as any Flask view would, and their
writes commit together with DBOS's checkpoint, so a crash can neither lose a reservation
nor make one twice.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from dbos_core import DBOS, Queue

from .models import Order, Product, db

# Orders wait here for a worker thread; at most 4 run at once in each process.
orders_queue = Queue("orders", worker_concurrency=4)

# Steps run on DBOS worker threads, outside any Flask context: they get what they
# need from the module, set by the application factory.
_ledger: Path | None = None
_payment_seconds = 0.0


class OutOfStockError(Exception):
    pass


def configure(ledger: Path, payment_seconds: float = 0.0) -> None:
    global _ledger, _payment_seconds
    _ledger, _payment_seconds = ledger, payment_seconds


def record(event: str) -> None:
    """Append a side effect to the ledger (stands in for calls to other services)."""
    assert _ledger is not None, "create_app() configures the ledger"
    with open(_ledger, "a") as f:
        f.write(f"{event}\n")
        f.flush()
        os.fsync(f.fileno())


@DBOS.transaction()
def reserve_order_items(order_id: str, items: list[str]) -> int:
    """Take the items from stock and create the order; returns its total in cents."""
    total = 0
    for sku in items:
        product = db.session.get(Product, sku)
        if product is None or product.stock < 1:
            # Raising rolls back the whole transaction: no stock is taken.
            raise OutOfStockError(f"{sku} is out of stock")
        product.stock -= 1
        total += product.price_cents
    db.session.add(Order(id=order_id, items=",".join(items), total_cents=total, status="reserved"))
    return total


@DBOS.step(retries_allowed=True, max_attempts=3, interval_seconds=0.5)
def charge_order_payment(order_id: str, amount_cents: int) -> str:
    record(f"charging {order_id} {amount_cents}")
    time.sleep(_payment_seconds)  # a slow payment provider (ORDERS_PAYMENT_SECONDS)
    record(f"charged {order_id} {amount_cents}")
    return f"payment-{order_id}"


@DBOS.transaction()
def mark_order_paid(order_id: str, payment_id: str) -> None:
    order = db.session.get_one(Order, order_id)
    order.status, order.payment_id = "paid", payment_id


@DBOS.step()
def send_order_confirmation(order_id: str, user: str | None) -> None:
    record(f"confirmed {order_id} to {user or 'guest'}")


@DBOS.workflow()
def checkout_order(items: list[str]) -> dict[str, Any]:
    # The workflow ID is the order ID: the client's idempotency key when it sent one.
    order_id = DBOS.workflow_id or ""
    total = reserve_order_items(order_id, items)
    payment = charge_order_payment(order_id, total)
    mark_order_paid(order_id, payment)
    send_order_confirmation(order_id, DBOS.authenticated_user)
    return {"order_id": order_id, "items": items, "payment": payment, "total_cents": total}
