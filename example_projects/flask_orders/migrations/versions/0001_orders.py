"""Products (with the catalog), orders, and DBOS's checkpoint table.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    products = op.create_table(
        "products",
        sa.Column("sku", sa.String(40), primary_key=True),
        sa.Column("price_cents", sa.Integer, nullable=False),
        sa.Column("stock", sa.Integer, nullable=False),
    )
    op.bulk_insert(
        products,
        [
            {"sku": "book", "price_cents": 1200, "stock": 10},
            {"sku": "pen", "price_cents": 250, "stock": 100},
            {"sku": "mug", "price_cents": 800, "stock": 2},
        ],
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("items", sa.Text, nullable=False),
        sa.Column("total_cents", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("payment_id", sa.String(80), nullable=True),
    )
    # The checkpoint of each @DBOS.transaction of a workflow, committed with its writes.
    op.create_table(
        "dbos_transaction_outputs",
        sa.Column("workflow_uuid", sa.Text, nullable=False),
        sa.Column("function_id", sa.Integer, nullable=False),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(
            "workflow_uuid", "function_id", name="dbos_transaction_outputs_pkey"
        ),
    )


def downgrade() -> None:
    op.drop_table("dbos_transaction_outputs")
    op.drop_table("orders")
    op.drop_table("products")
