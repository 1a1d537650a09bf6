"""The messaging part of the ``DBOS`` facade (a mixin of classmethods)."""

from __future__ import annotations


class MessagingAPI:
    pass
