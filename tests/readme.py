"""The README's sections, so that tests run its examples as written."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_section(heading_start: str) -> str:
    """The text of the ``## <heading...>`` section, up to the next ``## `` heading."""
    text = README.read_text()
    marker = f"\n## {heading_start}"
    start = text.index(marker)
    end = text.find("\n## ", start + len(marker))
    return text[start : end if end != -1 else len(text)]
