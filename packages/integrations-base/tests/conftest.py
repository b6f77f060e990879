"""Fixtures: fake installed distributions in a temporary site directory.

`fake_site` puts a fresh directory on `sys.path` and lets a test create distributions in it
the way an installer would: ``<name>-<version>.dist-info/`` with METADATA, entry_points.txt
and RECORD, next to the package holding ``manifest.json`` and the connector modules. Every
package name carries a random suffix, so `sys.modules` caching never leaks between tests,
and every generated module records its import in a marker file, so a test can prove that a
module was never executed.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from integrations.base._discovery import clear_entry_point_cache

_RECORD_IMPORT = """\
with open({marker!r}, "a", encoding="utf-8") as _marker:
    _marker.write(__name__ + "\\n")
"""

_CONNECTOR = '''\
from integrations.base import (
    AuthToken,
    BaseConnector,
    Capability,
    Connection,
    ConnectorConfig,
    FetchResult,
    PushResult,
    RevokeResult,
    Secret,
    SyncResult,
    SyncState,
)


class Config(ConnectorConfig):
    """Configuration of the fake connector."""

    endpoint: str = "memory://"
    api_key: Secret | None = None


class {class_name}(BaseConnector[Config]):
    capabilities = frozenset({{{capabilities}}})
    config_model = Config

    def auth(self, context):
        return AuthToken(value=Secret("token"))

    def connect(self, config):
        return Connection(connection_id="fake")

    def revoke(self, token):
        return RevokeResult(revoked=True)
{operations}'''

_OPERATIONS = {
    "fetch": "\n    def fetch(self, query):\n        return FetchResult()\n",
    "push": "\n    def push(self, payload):\n        return PushResult()\n",
    "sync": "\n    def sync(self, state):\n        return SyncResult(state=SyncState())\n",
}


def connector_source(
    class_name: str = "FakeConnector",
    capabilities: Sequence[str] = ("fetch",),
    *,
    implement: Sequence[str] | None = None,
    extra: str = "",
) -> str:
    """Source of a connector module: a `BaseConnector` subclass fitting the contract.

    `implement` names the data operations given a body (default: the declared ones), so a
    test can declare a capability without implementing it; `extra` is appended verbatim.
    """
    implemented = capabilities if implement is None else implement
    return _CONNECTOR.format(
        class_name=class_name,
        capabilities=", ".join(f"Capability.{c.upper()}" for c in capabilities),
        operations="".join(_OPERATIONS[name] for name in implemented),
    ) + (f"\n{extra}\n" if extra else "")


def entry(
    name: str, module: str, class_name: str = "FakeConnector", **fields: Any
) -> dict[str, Any]:
    """One manifest entry in the seed's minimal form, plus any optional `fields`."""
    return {"name": name, "module": module, "class": class_name, **fields}


@dataclass
class FakeDistribution:
    """A distribution written into the fake site."""

    name: str
    version: str
    package: str
    dist_info: Path
    files: list[str]

    @property
    def manifest_path(self) -> Path:
        return self.dist_info.parent / self.package / "manifest.json"

    def module(self, stem: str) -> str:
        """The dotted name of module `stem` inside this distribution's package."""
        return f"{self.package}.{stem}"


@dataclass
class FakeSite:
    """A directory on `sys.path` where tests install fake distributions and modules."""

    root: Path
    manifests: Path
    marker: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    created_modules: set[str] = field(default_factory=set)
    _counter: Iterator[int] = field(default_factory=itertools.count)

    def unique(self, stem: str) -> str:
        """An identifier no other test (or earlier call) uses: ``<stem>_<tag>_<n>``."""
        return f"{stem}_{self.tag}_{next(self._counter)}"

    def connector_name(self, stem: str) -> str:
        """A registry name (lowercase, dots allowed) unique to this test."""
        return f"t{self.tag}.{stem}"

    def imported(self) -> list[str]:
        """Modules created here that were executed, in import order."""
        if not self.marker.exists():
            return []
        return self.marker.read_text(encoding="utf-8").splitlines()

    def write_module(self, dotted: str, source: str) -> Path:
        """Write module `dotted` (and its packages) under the site root; return its path.

        The module records its import in the marker file before running `source`.
        """
        parts = dotted.split(".")
        directory = self.root.joinpath(*parts[:-1])
        directory.mkdir(parents=True, exist_ok=True)
        for depth in range(1, len(parts)):
            init = self.root.joinpath(*parts[:depth], "__init__.py")
            if not init.exists():
                init.write_text(_RECORD_IMPORT.format(marker=str(self.marker)), "utf-8")
        path = directory / f"{parts[-1]}.py"
        path.write_text(_RECORD_IMPORT.format(marker=str(self.marker)) + source, encoding="utf-8")
        self.created_modules.update(".".join(parts[:depth]) for depth in range(1, len(parts) + 1))
        importlib.invalidate_caches()
        return path

    def add_distribution(
        self,
        stem: str,
        *,
        modules: Mapping[str, str] | None = None,
        manifest: Mapping[str, Any] | bytes | None = None,
        version: str = "1.0",
        entry_point: str | None = None,
        package: str | None = None,
        extras: Mapping[str, Sequence[str]] | None = None,
    ) -> FakeDistribution:
        """Install a fake distribution named ``fake-<stem>-<tag>``.

        `modules` maps module stems (inside the distribution's own package) to their source;
        `manifest` is the document (dict) or raw bytes of ``<package>/manifest.json`` (None:
        no manifest file). `entry_point` overrides the entry point's value (the package);
        `package` is the import package's name (default: a fresh `unique` one); `extras` maps
        each optional extra to its requirements (``Provides-Extra`` and ``Requires-Dist``).
        """
        name = f"fake-{stem}-{self.tag}"
        package = package or self.unique(stem.replace("-", "_"))
        files = [f"{package}/__init__.py"]
        package_dir = self.root / package
        package_dir.mkdir()
        (package_dir / "__init__.py").write_text(
            _RECORD_IMPORT.format(marker=str(self.marker)), encoding="utf-8"
        )
        self.created_modules.add(package)
        for module_stem, source in (modules or {}).items():
            path = self.write_module(f"{package}.{module_stem}", source)
            files.append(path.relative_to(self.root).as_posix())
        if manifest is not None:
            data = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
            (package_dir / "manifest.json").write_bytes(data)
            files.append(f"{package}/manifest.json")
        dist_info = self.root / f"{name.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir()
        extra_lines = "".join(
            f"Provides-Extra: {extra}\n"
            + "".join(f'Requires-Dist: {item}; extra == "{extra}"\n' for item in requirements)
            for extra, requirements in (extras or {}).items()
        )
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{extra_lines}",
            encoding="utf-8",
        )
        (dist_info / "entry_points.txt").write_text(
            f"[integrations.manifests]\n{name} = {entry_point or package}\n", encoding="utf-8"
        )
        meta_files = ["METADATA", "entry_points.txt", "RECORD"]
        files.extend(f"{dist_info.name}/{item}" for item in meta_files)
        (dist_info / "RECORD").write_text("".join(f"{item},,\n" for item in files), "utf-8")
        importlib.invalidate_caches()
        return FakeDistribution(name, version, package, dist_info, files)

    def write_manifest(self, document: Mapping[str, Any] | bytes, stem: str = "app") -> Path:
        """An application manifest file outside the site directory."""
        path = self.manifests / f"{self.unique(stem)}.json"
        path.write_bytes(document if isinstance(document, bytes) else json.dumps(document).encode())
        return path

    @staticmethod
    def connector_source(
        class_name: str = "FakeConnector",
        capabilities: Sequence[str] = ("fetch",),
        *,
        implement: Sequence[str] | None = None,
        extra: str = "",
    ) -> str:
        """See `connector_source`."""
        return connector_source(class_name, capabilities, implement=implement, extra=extra)

    @staticmethod
    def entry(
        name: str, module: str, class_name: str = "FakeConnector", **fields: Any
    ) -> dict[str, Any]:
        """See `entry`."""
        return entry(name, module, class_name, **fields)

    def subprocess_environment(self, **extra: str) -> dict[str, str]:
        """Environment for a child Python that sees this site and this `integrations.base`.

        `INTEGRATIONS_*` variables of the caller are dropped; `extra` adds variables.
        """
        import integrations.base

        base_root = Path(integrations.base.__file__).resolve().parents[2]
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("INTEGRATIONS_")
        }
        environment["PYTHONPATH"] = os.pathsep.join([str(self.root), str(base_root)])
        environment.update(extra)
        return environment

    def distributions(self, **params: Any) -> Iterable[metadata.Distribution]:
        """The distributions installed in this site only."""
        return _real_distributions(path=[str(self.root)])


_real_distributions = metadata.distributions


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their own manifests and prefixes; the caller's environment has no say."""
    monkeypatch.delenv("INTEGRATIONS_MANIFEST", raising=False)
    monkeypatch.delenv("INTEGRATIONS_ALLOWED_MODULES", raising=False)
    monkeypatch.delenv("INTEGRATIONS_TRUST", raising=False)


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSite]:
    """An empty site directory on `sys.path`, with the entry-point scan cache cleared."""
    root = tmp_path / "site"
    root.mkdir()
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    site = FakeSite(root=root, manifests=manifests, marker=tmp_path / "imported.txt")
    monkeypatch.syspath_prepend(str(root))
    clear_entry_point_cache()
    yield site
    clear_entry_point_cache()
    for name in site.created_modules:
        sys.modules.pop(name, None)
    importlib.invalidate_caches()


@pytest.fixture
def only_fake_distributions(fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> FakeSite:
    """Hide every installed distribution but those of `fake_site` from the entry-point scan.

    For tests whose outcome depends on *all* connectors (strict mode, `doctor` exit 0): the
    environment may hold other distributions (integrations-mocks, say) whose state is not
    this test's business.
    """
    monkeypatch.setattr(metadata, "distributions", fake_site.distributions)
    clear_entry_point_cache()
    return fake_site
