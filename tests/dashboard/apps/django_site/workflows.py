"""Imported by dbos_django (its ``workflow_modules`` setting) before DBOS launches."""

from tests.dashboard.apps.workflows import *  # noqa: F403
