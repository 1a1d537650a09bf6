#!/usr/bin/env python
"""manage.py of the dbos_django test project (run from the repository root's PYTHONPATH)."""

import os
import sys

if __name__ == "__main__":
    # The settings are tests.django.settings: the repository root must be importable.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
