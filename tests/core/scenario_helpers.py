"""Shared by the client tests and the processes they start (importable by both)."""

from __future__ import annotations


class ServiceOutage(Exception):
    """A downstream service was unavailable (the seeds' example error)."""
