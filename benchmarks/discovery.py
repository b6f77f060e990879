"""Cost of discovery: our manifest discovery vs the bare entry-point scan vs stevedore.

Generates, in a temporary directory, a site of 200 fake distributions with 5 connectors each:
every distribution has a ``.dist-info`` (METADATA, RECORD, entry_points.txt), a package with
``manifest.json`` and five tiny connector modules that append their name to the file named by
``BENCH_IMPORT_LOG`` when imported. entry_points.txt holds our ``integrations.manifests``
entry and, for the comparison, the same connectors as a stevedore-style
``integrations.connectors`` group (one entry point per connector class).

Each measurement runs in a fresh interpreter (``PYTHONPATH`` = the site + this checkout's
integrations-base sources) and times only the call, after the imports it needs:
  (a) bare scan: ``importlib.metadata.entry_points(group="integrations.manifests")``;
  (b) stevedore: ``ExtensionManager("integrations.connectors", invoke_on_load=False)``, which
      loads (imports) every plugin; integrations.base is imported beforehand, so (b) pays for
      the plugin modules themselves, not for pydantic;
  (c) ``Registry().discover()`` cold (the import of ``integrations.base.registry`` is reported
      on its own line);
  (d) ``get()`` of one connector after (c), in the same process;
  (e) the connector modules (c) imported: must be 0;
  and, so that the cost deferred by laziness stays visible, ``connectors()`` after (d): the
  ownership check of every entry (each distribution's RECORD) and the distribution versions.
  (c) runs with nothing requiring a signature, although every manifest of the site is signed:
  the crypto library must not be imported (counted).
  (f) ``Registry().discover()`` cold with ``INTEGRATIONS_TRUST`` requiring signatures: each
      manifest's ``manifest.sig`` read, the manifest and its five modules hashed, its one
      signature verified; the import of the crypto library is part of the time. Then ``get()``
      (the module hashed again and run from those bytes) and ``connectors()``.
  (g) the crypto library alone, in the same state as (f): importing it, then verifying as
      many Ed25519 signatures as there are distributions; the part of (f) no implementation
      of the check can avoid.
Targets: (c) <= 1.5 x (a) and (b) >= 4 x (c); (e) == 0; crypto modules after (c) == 0;
(f) <= 3 x (a).

Run: python benchmarks/discovery.py [--repeats N] [--budget SECONDS] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DISTRIBUTIONS = 200
CONNECTORS = 5
BASE_SRC = Path(__file__).resolve().parents[1] / "packages" / "integrations-base" / "src"

_MODULE = """\
import os as _os

_log = _os.environ.get("BENCH_IMPORT_LOG")
if _log:
    with open(_log, "a", encoding="utf-8") as _file:
        _file.write(__name__ + "\\n")

from integrations.base import (
    AuthToken,
    BaseConnector,
    Capability,
    Connection,
    FetchResult,
    RevokeResult,
    Secret,
)


class {cls}(BaseConnector):
    capabilities = frozenset({{Capability.FETCH}})

    def auth(self, context):
        return AuthToken(value=Secret("token"))

    def connect(self, config):
        return Connection(connection_id="{name}")

    def fetch(self, query):
        return FetchResult()

    def revoke(self, token):
        return RevokeResult(revoked=True)
"""

# The child programs. Each prints one JSON object; every timing is a pair [wall, cpu] in
# seconds (cpu = this process's CPU time, which other load on the machine disturbs less).
_PRELUDE = """\
import json, os, sys, time


def clock():
    return time.perf_counter(), time.process_time()


def since(start):
    wall, cpu = clock()
    return [wall - start[0], cpu - start[1]]


def imported():
    log = os.environ["BENCH_IMPORT_LOG"]
    return len(open(log).read().splitlines()) if os.path.exists(log) else 0
"""

_BARE = """\
from importlib import metadata
start = clock()
found = metadata.entry_points(group="integrations.manifests")
print(json.dumps({"scan": since(start), "entry_points": len(found)}))
"""

_STEVEDORE = """\
import integrations.base
from stevedore import ExtensionManager
start = clock()
manager = ExtensionManager("integrations.connectors", invoke_on_load=False)
elapsed = since(start)
print(json.dumps({"stevedore": elapsed, "extensions": len(manager.extensions),
                  "imported": imported()}))
"""

_CRYPTO = """\
def crypto_modules():
    return sum(1 for name in sys.modules if name.split(".")[0] in ("cryptography", "rfc8785"))
"""

_DISCOVER = """\
start = clock()
from integrations.base.registry import Registry, Status
imported_registry = since(start)
registry = Registry()
start = clock()
infos = registry.discover()
discover = since(start)
after_discover = imported()
loaded_modules = sum(1 for name in list(sys.modules) if name.startswith("bench_pkg_"))
start = clock()
cls = registry.get("bench-000-0")
get = since(start)
assert cls.__name__ == "Connector0", cls
start = clock()
everything = registry.connectors()
connectors = since(start)
bench = [info for info in everything if info.name.startswith("bench-")]
print(json.dumps({
    "import": imported_registry, "discover": discover, "get": get, "connectors": connectors,
    "declared": len([info for info in infos if info.name.startswith("bench-")]),
    "ok": sum(1 for info in bench if info.status is Status.OK),
    "imported_by_discover": after_discover, "modules_after_discover": loaded_modules,
    "imported_after_get": imported(), "crypto_modules": crypto_modules(),
}))
"""

_DISCOVER_SIGNED = """\
from integrations.base.registry import Registry, Status
registry = Registry()
start = clock()
infos = registry.discover()
discover = since(start)
after_discover = imported()
start = clock()
cls = registry.get("bench-000-0")
get = since(start)
start = clock()
everything = registry.connectors()
connectors = since(start)
bench = [info for info in everything if info.name.startswith("bench-")]
print(json.dumps({
    "discover": discover, "get": get, "connectors": connectors,
    "verified": sum(1 for info in bench if info.signature == "verified"),
    "ok": sum(1 for info in bench if info.status is Status.OK),
    "imported_by_discover": after_discover, "crypto_modules": crypto_modules(),
}))
"""


_CRYPTO_FLOOR = """\
import integrations.base.registry
count = int(sys.argv[1])
start = clock()
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
crypto_import = since(start)
key = Ed25519PrivateKey.generate()
public = key.public_key()
messages = [b"%d" % index * 100 for index in range(count)]
signatures = [key.sign(message) for message in messages]
start = clock()
for message, signature in zip(messages, signatures):
    public.verify(signature, message)
verify = since(start)
print(json.dumps({"floor": [crypto_import[0] + verify[0], crypto_import[1] + verify[1]],
                  "crypto_import": crypto_import, "verify": verify}))
"""


def generate_site(root: Path, distributions: int, connectors: int) -> None:
    """Write the fake distributions into `root`, as an installer would."""
    for index in range(distributions):
        name = f"bench-dist-{index:03d}"
        package = f"bench_pkg_{index:03d}"
        package_dir = root / package
        package_dir.mkdir(parents=True)
        files = [f"{package}/__init__.py", f"{package}/manifest.json"]
        (package_dir / "__init__.py").write_text("", encoding="utf-8")
        entries = []
        stevedore_lines = []
        for number in range(connectors):
            module = f"conn_{number}"
            cls = f"Connector{number}"
            connector = f"bench-{index:03d}-{number}"
            (package_dir / f"{module}.py").write_text(
                _MODULE.format(cls=cls, name=connector), encoding="utf-8"
            )
            files.append(f"{package}/{module}.py")
            entries.append(
                {
                    "name": connector,
                    "module": f"{package}.{module}",
                    "class": cls,
                    "description": f"Benchmark connector {number} of {name}.",
                    "version": "1.0.0",
                    "capabilities": [{"action": "fetch", "idempotent": True}],
                    "tags": ["benchmark"],
                }
            )
            stevedore_lines.append(f"{connector} = {package}.{module}:{cls}")
        manifest = {"schema_version": 1, "connectors": entries}
        (package_dir / "manifest.json").write_text(json.dumps(manifest, indent=2), "utf-8")
        dist_info = root / f"{name.replace('-', '_')}-1.0.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0.0\n", encoding="utf-8"
        )
        (dist_info / "entry_points.txt").write_text(
            f"[integrations.manifests]\n{name} = {package}\n\n"
            "[integrations.connectors]\n" + "\n".join(stevedore_lines) + "\n",
            encoding="utf-8",
        )
        files += [f"{dist_info.name}/{item}" for item in ("METADATA", "entry_points.txt")]
        files.append(f"{dist_info.name}/RECORD")
        (dist_info / "RECORD").write_text("".join(f"{item},,\n" for item in files), "utf-8")


def sign_site(root: Path, workdir: Path, base_src: Path) -> dict[str, str]:
    """Sign every manifest of the site with one new key; return the trust settings for it."""
    if (base_src / "integrations" / "base" / "__init__.py").is_file():
        sys.path.insert(0, str(base_src))
    from integrations.base._signing import generate_key, sign_manifest

    key = workdir / "publisher.pem"
    public = generate_key(key)
    for manifest in sorted(root.glob("bench_pkg_*/manifest.json")):
        sign_manifest(manifest, key, "bench-publisher")
    return {"keys": {"bench-publisher": public}, "require_signed_manifests": True}


def run_child(
    program: str,
    environment: dict[str, str],
    log: Path,
    extra: dict[str, str] | None = None,
    arguments: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run `program` in a fresh interpreter; its import log starts empty."""
    log.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", _PRELUDE + _CRYPTO + program, *arguments],
        env={**environment, **(extra or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def has_stevedore() -> bool:
    try:
        import stevedore  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    """Generate the site, run every measurement interleaved, print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21, help="fresh runs per measurement")
    parser.add_argument("--budget", type=float, default=180.0, help="stop repeating after (s)")
    parser.add_argument("--distributions", type=int, default=DISTRIBUTIONS)
    parser.add_argument("--connectors", type=int, default=CONNECTORS)
    parser.add_argument("--keep", action="store_true", help="keep the generated site")
    parser.add_argument(
        "--base-src",
        type=Path,
        default=BASE_SRC,
        help="directory holding integrations/base (default: this checkout's sources; "
        "when it does not exist, the installed integrations-base is used)",
    )
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="integrations-bench-"))
    site = workdir / "site"
    log = workdir / "imported.log"
    generate_site(site, options.distributions, options.connectors)
    trust = sign_site(site, workdir, options.base_src)
    path = [str(site)]
    if (options.base_src / "integrations" / "base" / "__init__.py").is_file():
        path.append(str(options.base_src))
    # Bytecode caching stays on (the warm-up run writes it), as in a real installation: the
    # plugin modules stevedore imports are not recompiled in every run.
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("INTEGRATIONS_") and key != "PYTHONDONTWRITEBYTECODE"
    }
    environment.update(
        PYTHONPATH=os.pathsep.join(path),
        BENCH_IMPORT_LOG=str(log),
        XDG_CACHE_HOME=str(workdir / "cache"),  # stevedore's entry-point cache, kept here
    )

    programs: dict[str, str] = {
        "bare": _BARE,
        "discover": _DISCOVER,
        "signed": _DISCOVER_SIGNED,
        "floor": _CRYPTO_FLOOR,
    }
    if has_stevedore():
        programs["stevedore"] = _STEVEDORE
    extras = {"signed": {"INTEGRATIONS_TRUST": json.dumps(trust)}}
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in programs}
    arguments = {"floor": (str(options.distributions),)}
    for name, program in programs.items():  # one unmeasured run each: warm the OS file cache
        run_child(program, environment, log, extras.get(name), arguments.get(name, ()))
    started = time.perf_counter()
    for _ in range(options.repeats):
        for name, program in programs.items():
            samples[name].append(
                run_child(program, environment, log, extras.get(name), arguments.get(name, ()))
            )
        if time.perf_counter() - started > options.budget:
            break

    def median(name: str, key: str) -> tuple[float, float]:
        """Medians of (wall, cpu) of `key` over the runs of program `name`."""
        wall = statistics.median(sample[key][0] for sample in samples[name])
        cpu = statistics.median(sample[key][1] for sample in samples[name])
        return wall, cpu

    def last(name: str, key: str) -> int:
        return int(samples[name][-1][key])

    bare = median("bare", "scan")
    discover = median("discover", "discover")
    signed = median("signed", "discover")
    stevedore = median("stevedore", "stevedore") if "stevedore" in samples else None
    timed: list[tuple[str, tuple[float, float] | None]] = [
        ("(a) bare entry_points(group=...) scan", bare),
        ("(b) stevedore ExtensionManager (imports all)", stevedore),
        ("(c) Registry().discover(), cold", discover),
        ("    import integrations.base.registry", median("discover", "import")),
        ("(d) get() of one connector after discover", median("discover", "get")),
        ("    connectors(): ownership checks + versions", median("discover", "connectors")),
        ("(f) discover(), signatures required", signed),
        ("    get() of one signed connector after (f)", median("signed", "get")),
        ("    connectors() after (f)", median("signed", "connectors")),
        ("(g) crypto import + one verify per manifest", median("floor", "floor")),
        ("    of which the import", median("floor", "crypto_import")),
    ]
    counts = [
        ("(e) connector modules imported by discover", last("discover", "imported_by_discover")),
        ("    modules in sys.modules after discover", last("discover", "modules_after_discover")),
        ("    connector modules imported after get()", last("discover", "imported_after_get")),
        ("    crypto modules loaded after (c)..(d)", last("discover", "crypto_modules")),
        ("    entries verified by (f)", last("signed", "verified")),
        ("    connector modules imported by (f)", last("signed", "imported_by_discover")),
    ]
    if "stevedore" in samples:
        counts.append(("    modules imported by stevedore", last("stevedore", "imported")))

    print(
        f"{options.distributions} distributions x {options.connectors} connectors = "
        f"{last('discover', 'declared')} declared ({last('discover', 'ok')} ok); "
        f"{len(samples['bare'])} fresh interpreters per measurement, medians; "
        f"Python {sys.version.split()[0]}"
    )
    width = max(len(label) for label, _ in timed + counts)
    print(f"{'measurement':<{width}}  {'wall':>10}  {'cpu':>10}")
    print(f"{'-' * width}  {'-' * 10}  {'-' * 10}")
    for label, value in timed:
        if value is None:
            print(f"{label:<{width}}  {'n/a':>10}  {'n/a':>10}  (stevedore not installed)")
        else:
            print(f"{label:<{width}}  {_ms(value[0]):>10}  {_ms(value[1]):>10}")
    for label, count in counts:
        print(f"{label:<{width}}  {count:>10}")
    print()
    ratios = [
        ("discover / bare scan", discover, bare, "<= 1.50x"),
        ("signed / bare scan", signed, bare, "<= 3.00x"),
        ("(c) + (g) / bare scan", _sum(discover, median("floor", "floor")), bare, "floor of (f)"),
    ]
    if stevedore is not None:
        ratios.append(("stevedore / discover", stevedore, discover, ">= 4.00x"))
    for label, numerator, denominator, target in ratios:
        print(
            f"{label:<22} wall {_ratio(numerator[0], denominator[0]):>7}   "
            f"cpu {_ratio(numerator[1], denominator[1]):>7}   (target {target})"
        )
    paired = statistics.median(
        ours["discover"][1] / bare_run["scan"][1]
        for ours, bare_run in zip(samples["discover"], samples["bare"], strict=True)
    )
    print(f"{'discover / bare scan':<22} cpu, median of the ratios of adjacent runs: {paired:.2f}x")
    paired_signed = statistics.median(
        ours["discover"][1] / bare_run["scan"][1]
        for ours, bare_run in zip(samples["signed"], samples["bare"], strict=True)
    )
    print(
        f"{'signed / bare scan':<22} cpu, median of the ratios of adjacent runs: "
        f"{paired_signed:.2f}x"
    )
    if options.keep:
        print(f"site kept in {site}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def _sum(first: tuple[float, float], second: tuple[float, float]) -> tuple[float, float]:
    return first[0] + second[0], first[1] + second[1]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x"


if __name__ == "__main__":
    main()
