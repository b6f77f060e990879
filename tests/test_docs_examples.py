"""Every Python example of the concept pages (lifecycle to sync pipelines) runs as shown.

Each ```python block of those pages is executed on its own, in a fresh namespace, against the
real mock connector of the installed `integrations-mocks`, the real SQLite memory store and
the Knowledge Vault API served on 127.0.0.1 (no fake): the pages promise that their examples
run, and this is where that promise is kept. A block preceded by the comment
``<!-- docs-example: skip -->`` is left out: only the legacy code the migration page quotes
as "before" is marked so.

Between examples the test restores what an example may change in the process (environment
variables, the mock's in-memory stores, logging configuration, the working directory), so
each example sees the process as a reader running it alone would.
"""

from __future__ import annotations

import logging
import os
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = (
    "lifecycle.md",
    "governance.md",
    "secrets.md",
    "untrusted-configuration.md",
    "signing.md",
    "resilience.md",
    "observability.md",
    "memory.md",
    "intent.md",
    "vault.md",
    "migration.md",
    "jobs.md",
)
SKIP_MARKER = "<!-- docs-example: skip -->"
LOGGERS = ("", "integrations", "integrations.audit", "integrations.lifecycle")

_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.DOTALL | re.MULTILINE,
)


@dataclass(frozen=True)
class Example:
    """One ```python block: where it is and its code."""

    page: str
    line: int
    code: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def examples_of(page: str) -> list[Example]:
    """The Python blocks of `page`, in order, without those marked to skip."""
    text = (DOCS / page).read_text(encoding="utf-8")
    found: list[Example] = []
    for match in _FENCE.finditer(text):
        language = match["info"].strip().split(" ")[0].split("{")[0]
        if language not in ("python", "py"):
            continue
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1].strip()
        if before == SKIP_MARKER:
            continue
        line = text.count("\n", 0, match.start("body")) + 1
        found.append(Example(page, line, textwrap.dedent(match["body"])))
    return found


EXAMPLES = [example for page in PAGES for example in examples_of(page)]


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what an example changes in the process once it has run."""
    from integrations.mocks import reset_stores

    environment = dict(os.environ)
    loggers = [logging.getLogger(name) for name in LOGGERS]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate, lg.disabled) for lg in loggers]
    monkeypatch.chdir(tmp_path)
    reset_stores()
    try:
        yield
    finally:
        reset_stores()
        os.environ.clear()
        os.environ.update(environment)
        for logger, handlers, level, propagate, disabled in saved:
            for handler in logger.handlers:
                if handler not in handlers:
                    handler.close()
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


def test_every_page_has_examples() -> None:
    for page in PAGES:
        assert examples_of(page), f"docs/{page} has no ```python example"


@pytest.fixture
def knowledge_vault_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The migration page's examples read ``KNOWLEDGE_VAULT_URL``: point it at a real server."""
    from integrations.adapters.memory_adapters.testing import KnowledgeVaultServer

    with KnowledgeVaultServer() as server:
        monkeypatch.setenv("KNOWLEDGE_VAULT_URL", server.url)
        yield


@pytest.mark.usefixtures("isolated", "knowledge_vault_url")
@pytest.mark.parametrize("example", EXAMPLES, ids=[example.id for example in EXAMPLES])
def test_example_runs(example: Example) -> None:
    # Pad with blank lines so that a traceback points at the line of the page.
    source = "\n" * (example.line - 1) + example.code
    code = compile(source, str(DOCS / example.page), "exec")
    namespace = {"__name__": f"docs_example_{example.page[:-3]}_{example.line}"}
    exec(code, namespace)
