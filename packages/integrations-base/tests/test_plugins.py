"""Audit sinks and secret providers contributed by other distributions through entry points."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from integrations.base import (
    AuditError,
    SecretError,
    SecretResolver,
    load_audit_sink,
)

if TYPE_CHECKING:
    from conftest import FakeSite

_PLUGIN = """\
from integrations.base import MemoryAuditSink


class CollectingSink(MemoryAuditSink):
    def __init__(self, label="default"):
        super().__init__()
        self.label = label


class Vault:
    scheme = "{scheme}"

    def resolve(self, reference):
        return "from-plugin:" + reference


def broken_provider():
    raise RuntimeError("the plug-in is broken")
"""


def install_plugin(site: FakeSite, scheme: str) -> str:
    """A distribution contributing a sink and two secret providers; returns its module name."""
    module = site.unique("plugin")
    site.write_module(module, _PLUGIN.format(scheme=scheme))
    dist_info = site.root / f"{module}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[integrations.audit_sinks]\n"
        f"collecting-{module} = {module}:CollectingSink\n"
        "[integrations.secret_providers]\n"
        f"{scheme} = {module}:Vault\n"
        f"{scheme}-broken = {module}:broken_provider\n"
    )
    (dist_info / "RECORD").write_text(f"{module}.py,,\n")
    return module


def test_a_third_party_audit_sink_is_loaded_by_name(fake_site: FakeSite) -> None:
    module = install_plugin(fake_site, "vaultx")

    sink = load_audit_sink(f"collecting-{module}", label="ops")

    assert type(sink).__name__ == "CollectingSink"
    assert getattr(sink, "label", None) == "ops"
    with pytest.raises(AuditError, match="no audit sink named 'absent'"):
        load_audit_sink("absent")


def test_a_third_party_secret_provider_serves_its_scheme(fake_site: FakeSite) -> None:
    install_plugin(fake_site, "vaulty")
    resolver = SecretResolver()

    assert resolver.resolve("vaulty:kv/app#token") == "from-plugin:kv/app#token"
    with pytest.raises(SecretError, match="'vaulty-broken' failed to load: RuntimeError"):
        resolver.resolve("vaulty-broken:anything")


def test_a_resolver_without_entry_points_takes_unknown_schemes_literally(
    fake_site: FakeSite,
) -> None:
    install_plugin(fake_site, "vaultz")

    assert SecretResolver(entry_points=False).resolve("vaultz:x") == "vaultz:x"


def test_jsonl_sink_is_safe_for_several_processes_appending(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    writer = textwrap.dedent(
        f"""
        import sys
        from integrations.base import AuditEvent, ConnectorMeta, JsonLinesAuditSink
        sink = JsonLinesAuditSink({str(path)!r}, fsync="batch", batch_size=50)
        meta = ConnectorMeta("m" * 300)
        for n in range(300):
            sink.emit(AuditEvent(sys.argv[1], n, 0.0, meta, "fetch", "started", "t", "a"))
        sink.close()
        """
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", writer, f"writer-{index}"]) for index in range(4)
    ]
    assert [process.wait(timeout=120) for process in processes] == [0, 0, 0, 0]

    lines = path.read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]  # every line is one whole JSON object
    assert len(events) == 4 * 300
    for index in range(4):
        mine = [e["id"] for e in events if e["correlation_id"] == f"writer-{index}"]
        assert mine == [f"writer-{index}-{n}" for n in range(300)]
