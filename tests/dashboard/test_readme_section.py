"""The README's dashboard section: its code compiles and names what exists; its
pictures are in the repository."""

from __future__ import annotations

import re

from tests.readme import README, readme_section


def test_snippets_compile_and_name_real_things() -> None:
    section = readme_section("The workflow dashboard")
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 4
    for index, code in enumerate(blocks):
        compiled = compile(code, f"README-dashboard-{index}", "exec")
        imports = "\n".join(
            line for line in code.splitlines() if line.startswith(("from ", "import "))
        )
        exec(compile(imports, f"README-dashboard-imports-{index}", "exec"), {})
        assert compiled is not None
    for picture in re.findall(r"\]\((docs/dashboard/[^)]+\.png)\)", section):
        path = README.parent / picture
        assert path.exists() and path.stat().st_size < 100_000, picture
