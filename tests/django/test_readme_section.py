"""The README's Django section shows the example project's code exactly as it runs."""

from __future__ import annotations

import re
from pathlib import Path

from tests.readme import readme_section

ROOT = Path(__file__).resolve().parents[2]
SECTION = readme_section("Django")
EXAMPLE = ROOT / "example_projects" / "django_notes"


def test_example_code_in_readme_is_the_tested_project() -> None:
    blocks = re.findall(r"```python\n(.*?)```", SECTION, re.S)
    for path in ("notes/workflows.py", "notes/views.py"):
        assert (EXAMPLE / path).read_text() in blocks, path


def test_readme_settings_keys_exist() -> None:
    from dbos_django.conf import DJANGO_KEYS

    for key in DJANGO_KEYS:
        assert f"`{key}`" in SECTION, key
