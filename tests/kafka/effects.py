"""The side-effect table of the consumer processes (``consumer_app.py``): one row per
effect, so that the tests can count how often each message's workflow acted."""

from __future__ import annotations

import sqlalchemy as sa

effects = sa.Table(
    "kafka_effects",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("topic", sa.Text, nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("workflow_id", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
)
