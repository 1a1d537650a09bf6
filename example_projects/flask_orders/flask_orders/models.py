"""The order service's tables, on Flask-SQLAlchemy (migrations in ../migrations)."""

from __future__ import annotations

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Product(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "products"
    sku: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    price_cents: Mapped[int]
    stock: Mapped[int]


class Order(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "orders"
    # The workflow ID: the client's idempotency key when it sent one.
    id: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    items: Mapped[str] = mapped_column(sa.Text)
    total_cents: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(20))
    payment_id: Mapped[str | None] = mapped_column(sa.String(80))

    def to_dict(self) -> dict[str, object]:
        return {
            "items": self.items.split(","),
            "total_cents": self.total_cents,
            "status": self.status,
            "payment_id": self.payment_id,
        }
