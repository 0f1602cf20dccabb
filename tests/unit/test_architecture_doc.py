"""docs/architecture.md names real files: every path it quotes exists in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
# A quoted path: a word with a slash and a file suffix or a trailing slash.
QUOTED_PATH = re.compile(r"`([a-z_]+/[\w/.*<>-]*?(?:\.\w+|/))`")


def test_every_path_the_architecture_names_exists() -> None:
    quoted = set(QUOTED_PATH.findall(DOC.read_text()))
    assert len(quoted) > 30
    missing = []
    for path in sorted(quoted):
        if "<" in path:  # a pattern such as activities/<area>.py: its folder must exist
            path = path.split("<")[0]
        if "*" in path:
            if not list(ROOT.glob(path)):
                missing.append(path)
        elif not (ROOT / path).exists():
            missing.append(path)
    assert missing == []
