"""Comments say why in the code's own words: none cites an issue number or a document
outside the repository, which a reader of the code cannot open."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("activities", "api", "app", "bench", "db", "notices", "orderflow", "policies",
            "simulators", "stack", "starter", "workers", "workflows", "tests")  # fmt: skip
CITATION = re.compile(r"(#|--|//).*\b(issue|Issue)\s*#?\d+|SPEC\.md|MEASUREMENTS\.md|LAYOUT\.md")


def test_no_comment_cites_an_issue_or_an_outside_document() -> None:
    suffixes = {".py", ".sql", ".js", ".html", ".jinja", ".css"}
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            if path.suffix not in suffixes or "__pycache__" in path.parts:
                continue
            if path == Path(__file__):
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if CITATION.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
