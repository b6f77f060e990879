"""MkDocs hook: gather every distribution's CHANGELOG.md into the changelog page.

Each distribution under ``packages/`` keeps its own ``CHANGELOG.md``. A page containing the
placeholder ``<!-- changelogs -->`` gets them all, ``integrations-base`` first and the rest in
name order, each under its own heading (the file's headings moved one level down). A new
distribution appears without a docs change. A distribution without a changelog is shown with
a warning box on the page rather than skipped.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

PLACEHOLDER = "<!-- changelogs -->"
BASE = "integrations-base"

log = logging.getLogger("mkdocs.hooks.changelogs")

_HEADING = re.compile(r"^(#{1,5})(\s)", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)


def _demote(text: str, levels: int) -> str:
    """Move every ATX heading down by `levels`, leaving fenced code untouched."""
    parts = _FENCE.split(text)
    out: list[str] = []
    inside = False
    for part in parts:
        if part in ("```", "~~~"):
            inside = not inside
            out.append(part)
        elif inside:
            out.append(part)
        else:
            out.append(_HEADING.sub(lambda m: "#" * levels + m.group(1) + m.group(2), part))
    return "".join(out)


_VERSION_HEADING = re.compile(r"^(###\s+)(\S+)(.*?)$", re.MULTILINE)


def _anchor_versions(text: str, distribution: str) -> str:
    """Give each version heading a stable anchor such as ``#integrations-base-0.1.0``."""

    def anchored(match: re.Match[str]) -> str:
        if "{#" in match.group(3):
            return match.group(0)
        slug = re.sub(r"[^A-Za-z0-9.+-]", "-", match.group(2))
        return f"{match.group(0)} {{#{distribution}-{slug}}}"

    return _VERSION_HEADING.sub(anchored, text)


def _distributions(repo_root: Path) -> list[Path]:
    found = [p for p in (repo_root / "packages").iterdir() if (p / "pyproject.toml").is_file()]
    return sorted(found, key=lambda p: (p.name != BASE, p.name))


def render(repo_root: Path) -> str:
    """The Markdown of every distribution's changelog."""
    sections: list[str] = []
    for directory in _distributions(repo_root):
        name = directory.name
        changelog = directory / "CHANGELOG.md"
        sections.append(f"## {name} {{#{name}}}\n")
        sections.append(f"Source: `packages/{name}/CHANGELOG.md`\n")
        if not changelog.is_file():
            log.info("%s has no CHANGELOG.md", name)
            sections.append(
                f'!!! warning "No changelog"\n\n    `packages/{name}/CHANGELOG.md` is missing.\n'
            )
            continue
        text = changelog.read_text(encoding="utf-8").strip()
        # Drop the file's own title: the section heading above names the distribution.
        lines = text.splitlines()
        if lines and lines[0].startswith("# "):
            text = "\n".join(lines[1:]).strip()
        sections.append(_anchor_versions(_demote(text, 1), name) + "\n")
    return "\n".join(sections)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the placeholder with the distributions' changelogs."""
    if PLACEHOLDER not in markdown:
        return markdown
    repo_root = Path(config["config_file_path"]).resolve().parent
    return markdown.replace(PLACEHOLDER, render(repo_root))
