"""HTTP routes: place an order (idempotently) and look it up."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from dbos_core import DBOS

from .models import Order, Product, db
from .workflows import checkout_order, orders_queue

orders = Blueprint("orders", __name__)


@orders.post("/orders")
def place_order() -> Any:
    items = (request.get_json(silent=True) or {}).get("items") or []
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        return jsonify({"error": "BAD_REQUEST", "message": "items must be a list of SKUs"}), 400
    unknown = sorted({sku for sku in items if db.session.get(Product, sku) is None})
    if unknown:
        message = f"unknown SKUs: {', '.join(unknown)}"
        return jsonify({"error": "BAD_REQUEST", "message": message}), 400
    # With a `dbos-idempotency-key` header, the key becomes the workflow ID, so a
    # retried request returns the same order instead of charging twice.
    handle = orders_queue.enqueue(checkout_order, items)
    return jsonify({"order_id": handle.get_workflow_id()}), 202


@orders.get("/orders/<order_id>")
def get_order(order_id: str) -> Any:
    # An unknown ID raises DBOSNonExistentWorkflowError: DBOSFlask answers 404 in JSON.
    status = DBOS.retrieve_workflow(order_id).get_status()
    order = db.session.get(Order, order_id)
    return jsonify(
        {
            "order_id": order_id,
            "status": status.status,
            "queue": status.queue_name,
            "user": status.authenticated_user,
            "result": status.output,
            "order": None if order is None else order.to_dict(),
        }
    )


@orders.get("/stock")
def stock() -> Any:
    products = db.session.scalars(db.select(Product).order_by(Product.sku))
    return jsonify({p.sku: p.stock for p in products})
