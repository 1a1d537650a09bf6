"""Alembic's environment for Flask-Migrate: the app's db metadata and engine.

db.metadata holds the app's models and DBOS's checkpoint table (dbos_transaction_outputs,
added by DBOSFlask(db=db)), so `flask db migrate` keeps both in step.
"""

from __future__ import annotations

from alembic import context
from flask import current_app

db = current_app.extensions["migrate"].db


def run_offline() -> None:
    """`flask db upgrade --sql`: print the SQL instead of running it."""
    url = db.engine.url.render_as_string(hide_password=False)
    context.configure(url=url, target_metadata=db.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    with db.engine.connect() as connection:
        context.configure(connection=connection, target_metadata=db.metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
