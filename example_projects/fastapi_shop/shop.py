"""A small durable shop: checkout is a DBOS workflow behind FastAPI endpoints.

Run it with ``python -m example_projects.fastapi_shop`` (SQLite file ``shop.sqlite``).
Retrying a request with the same ``dbos-idempotency-key`` header never charges twice;
killing the server mid-checkout and starting it again finishes the checkout.
"""

from __future__ import annotations

import hmac
import logging
import os
import uuid
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from dbos_core import DBOS, DBOSConfig, Queue
from dbos_fastapi import DBOSMiddleware, install_exception_handlers, metrics_router

from . import staff

log = logging.getLogger("shop")

# Prices in cents.
CATALOG: dict[str, int] = {"book": 1200, "pen": 250, "mug": 800}

# Background orders wait here; each server process works on at most 5 at a time.
orders_queue = Queue("orders", worker_concurrency=5)

# Orders of this total or more wait for a manager's approval before the card is charged.
APPROVAL_CENTS = 10_000


class Order(BaseModel):
    items: dict[str, int] = Field(description="item name -> quantity")


class OrderNotApproved(Exception):
    pass


@DBOS.step()
def price_order(items: dict[str, int]) -> int:
    return sum(CATALOG[name] * quantity for name, quantity in items.items())


@DBOS.step()
def charge_card(customer: str | None, total_cents: int) -> str:
    # A real payment API call. Its result is checkpointed, so a retried or recovered
    # checkout reuses this payment ID instead of charging again.
    payment_id = f"pay_{uuid.uuid4().hex[:12]}"
    log.info("charged %s cents to %s: %s", total_cents, customer or "guest", payment_id)
    return payment_id


@DBOS.step()
def send_confirmation(order_id: str, payment_id: str) -> None:
    log.info("order %s confirmed (payment %s)", order_id, payment_id)


@DBOS.workflow()
def checkout(items: dict[str, int]) -> dict[str, Any]:
    # Progress is published as an event that clients read while the order runs.
    DBOS.set_event("progress", "pricing")
    total = price_order(items)
    if total >= APPROVAL_CENTS:
        # A durable wait: the order may wait days for POST /orders/{id}/approve, across
        # restarts, without holding a thread.
        DBOS.set_event("progress", "awaiting approval")
        if DBOS.recv("approval", timeout_seconds=7 * 24 * 3600) != "approved":
            raise OrderNotApproved(f"order of {total} cents was not approved")
    DBOS.set_event("progress", "charging")
    payment_id = charge_card(DBOS.authenticated_user, total)
    send_confirmation(DBOS.workflow_id or "", payment_id)
    DBOS.set_event("progress", "confirmed")
    return {
        "order_id": DBOS.workflow_id,
        "customer": DBOS.authenticated_user,
        "total_cents": total,
        "payment_id": payment_id,
    }


def customer_of(conn: HTTPConnection) -> str | None:
    # Stand-in for real authentication (a session, a JWT...): the customer's name.
    return conn.headers.get("x-customer")


def validate(order: Order) -> None:
    unknown = sorted(set(order.items) - set(CATALOG))
    if unknown:
        raise HTTPException(422, f"unknown items: {', '.join(unknown)}")
    if not order.items or any(q < 1 for q in order.items.values()):
        raise HTTPException(422, "an order needs at least one item, each quantity >= 1")


def require_metrics_token(request: Request) -> None:
    # Stand-in for real operator authentication: a bearer token from the environment.
    expected = f"Bearer {os.environ.get('SHOP_METRICS_TOKEN', '')}"
    given = request.headers.get("authorization", "")
    if not os.environ.get("SHOP_METRICS_TOKEN") or not hmac.compare_digest(given, expected):
        raise HTTPException(401, "a valid metrics token is required")


def create_app(config: DBOSConfig, staff_password: str | None = None) -> FastAPI:
    app = FastAPI(title="Durable shop")
    install_exception_handlers(app)
    # The DBOS workflow dashboard at /dbos, for staff (see staff.py).
    staff.install(app, staff_password or os.environ.get("SHOP_STAFF_PASSWORD"))
    if config.get("enable_otlp"):
        # Request spans (honouring an inbound traceparent): a checkout started by a
        # request is a child of the request's span, its steps below it.
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app)
    if config.get("enable_metrics"):
        app.include_router(metrics_router(dependencies=[Depends(require_metrics_token)]))

    @app.post("/checkout")
    def checkout_now(order: Order) -> dict[str, Any]:
        """Check out and wait for the receipt (a sync endpoint, run in the threadpool)."""
        validate(order)
        return checkout(order.items)

    @app.post("/orders", status_code=202)
    async def place_order(order: Order) -> dict[str, str]:
        """Queue the checkout; follow it at GET /orders/{order_id}."""
        validate(order)
        handle = await orders_queue.enqueue_async(checkout, order.items)
        return {"order_id": handle.get_workflow_id()}

    @app.get("/orders/{order_id}")
    async def order_status(order_id: str) -> dict[str, Any]:
        handle = await DBOS.retrieve_workflow_async(order_id)
        status = await handle.get_status()
        progress = (await DBOS.get_all_events_async(order_id)).get("progress")
        receipt = status.output if status.status == "SUCCESS" else None
        return {
            "order_id": order_id,
            "status": status.status,
            "progress": progress,
            "receipt": receipt,
        }

    @app.post("/orders/{order_id}/approve")
    async def approve(order_id: str) -> dict[str, str]:
        """A manager approves a large order; its checkout goes on at once."""
        await DBOS.send_async(order_id, "approved", "approval")
        return {"order_id": order_id, "approval": "sent"}

    @app.get("/orders/{order_id}/receipt")
    async def order_receipt(order_id: str) -> dict[str, Any]:
        handle = await DBOS.retrieve_workflow_async(order_id)
        result: dict[str, Any] = await handle.get_result()
        return result

    # Launches DBOS after startup (recovering interrupted checkouts), destroys it at shutdown.
    app.add_middleware(DBOSMiddleware, config=config, user_resolver=customer_of)
    return app


def default_config() -> DBOSConfig:
    config: DBOSConfig = {
        "name": "fastapi-shop",
        "system_database_url": os.environ.get("DBOS_SYSTEM_DATABASE_URL", "sqlite:///shop.sqlite"),
    }
    collector = os.environ.get("OTLP_COLLECTOR")  # e.g. http://localhost:4318
    if collector:
        config["enable_otlp"] = True
        config["otlp_traces_endpoints"] = [f"{collector}/v1/traces"]
        config["otlp_logs_endpoints"] = [f"{collector}/v1/logs"]
    if os.environ.get("SHOP_METRICS_TOKEN"):
        config["enable_metrics"] = True
    return config


app = create_app(default_config())
