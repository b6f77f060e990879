"""Signed manifests: signing, trust, refusal before import, the check again at import, the CLI."""

from __future__ import annotations

import base64
import importlib
import json
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import rfc8785
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.base import (
    ConfigError,
    ConnectorUnavailable,
    GovernanceSettings,
    SigningError,
    TrustPolicy,
    TrustSettings,
)
from integrations.base._cli import cli
from integrations.base._registry import Registry, Status
from integrations.base._signing import (
    SIGNATURE_FILENAME,
    _canonical,
    _load,
    canonical_json,
    generate_key,
    sign_manifest,
)
from integrations.base._trust import decode_public_key

if TYPE_CHECKING:
    from conftest import FakeDistribution, FakeSite


@dataclass(frozen=True)
class Key:
    """A publisher key pair written by `generate_key`."""

    key_id: str
    private: Path
    public: str

    @property
    def raw(self) -> bytes:
        return base64.b64decode(self.public)


def new_key(directory: Path, key_id: str) -> Key:
    private = directory / f"{key_id}.pem"
    return Key(key_id, private, generate_key(private))


@pytest.fixture
def key(tmp_path: Path) -> Key:
    return new_key(tmp_path, "publisher-1")


@dataclass(frozen=True)
class Signed:
    """A fake distribution with one connector, its manifest signed."""

    dist: FakeDistribution
    name: str
    module: str
    module_file: Path


def signed_distribution(
    site: FakeSite, key: Key | None, stem: str = "signed", **entry_fields: Any
) -> Signed:
    name = site.connector_name(stem)
    package = site.unique(stem)
    module = f"{package}.connector"
    dist = site.add_distribution(
        stem,
        package=package,
        modules={"connector": site.connector_source()},
        manifest={"schema_version": 1, "connectors": [site.entry(name, module, **entry_fields)]},
    )
    if key is not None:
        sign_manifest(dist.manifest_path, key.private, key.key_id)
    module_file = dist.manifest_path.parent / "connector.py"
    return Signed(dist, name, module, module_file)


def trusting(*keys: Key, required: bool = True, revoked: tuple[str, ...] = ()) -> Registry:
    trust = TrustPolicy(
        keys={key.key_id: key.raw for key in keys},
        revoked=frozenset(revoked),
        require_signed_manifests=required,
    )
    return Registry(environment=False, allowed_modules=[], trust=trust)


def info_of(registry: Registry, name: str) -> Any:
    return {info.name: info for info in registry.discover()}[name]


# -- canonical JSON ----------------------------------------------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_canonical_json_is_rfc8785(value: Any) -> None:
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(SigningError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected
    # The verifier's path: parse the bytes on disk, escaped or not, and canonicalise.
    for ascii_only in (True, False):
        data = json.dumps(value, ensure_ascii=ascii_only, indent=1).encode("utf-8", "surrogatepass")
        assert _canonical(*_load(data)) == expected


def test_canonical_json_sorts_keys_by_utf16_code_units_like_jcs() -> None:
    # U+E000 sorts before U+10000 by code point but after it by UTF-16 code units.
    value = {"\ue000": 1, "\U00010000": 2, "a": 1.5}

    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json(value).index("\U00010000".encode()) < canonical_json(value).index(
        "\ue000".encode()
    )


def test_integers_beyond_a_double_are_refused() -> None:
    with pytest.raises(SigningError, match="not canonicalisable"):
        canonical_json({"n": 2**60})


# -- keys ------------------------------------------------------------------------------------


def test_generated_private_key_is_mode_0600_and_never_overwritten(tmp_path: Path) -> None:
    private = tmp_path / "k.pem"
    public = generate_key(private)

    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert len(decode_public_key(public)) == 32
    with pytest.raises(SigningError, match="exists"):
        generate_key(private)


def test_public_keys_are_read_from_base64_and_pem(key: Key) -> None:
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(key.private.read_bytes(), password=None)
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )

    assert decode_public_key(pem) == decode_public_key(key.public) == key.raw


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not base64!", "base64 or PEM"),
        (base64.b64encode(b"x" * 31).decode(), "32 bytes, this one has 31"),
        (
            "-----BEGIN PUBLIC KEY-----\n"
            + base64.b64encode(b"\x30" * 44).decode()
            + "\n-----END PUBLIC KEY-----",
            "not an Ed25519 key",
        ),
    ],
)
def test_bad_public_keys_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_public_key(text)


# -- trust settings ----------------------------------------------------------------------------


def test_trust_settings_from_toml(tmp_path: Path, key: Key) -> None:
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text(
        "[governance.trust]\n"
        "require_signed_manifests = true\n"
        'revoked = ["old-key"]\n'
        "[governance.trust.keys]\n"
        f'{key.key_id} = "{key.public}"\n',
        encoding="utf-8",
    )

    trust = GovernanceSettings.from_toml(settings_file).build().trust

    assert trust == TrustPolicy({key.key_id: key.raw}, frozenset({"old-key"}), True)


def test_trust_settings_from_the_environment(key: Key) -> None:
    value = json.dumps({"keys": {key.key_id: key.public}, "require_signed_manifests": True})

    from_settings = GovernanceSettings.from_env({"INTEGRATIONS_TRUST": value}).build().trust
    direct = TrustPolicy.from_environment({"INTEGRATIONS_TRUST": value})

    assert from_settings == direct == TrustPolicy({key.key_id: key.raw}, frozenset(), True)
    assert TrustPolicy.from_environment({}) == TrustPolicy()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"keys": {"k": "short"}}, "keys: Value error, key 'k': a public key is base64 or PEM"),
        ({"keys": {"-bad id": "AAAA"}}, "does not match"),
        ({"require_signed": True}, "require_signed: Extra inputs are not permitted"),
    ],
)
def test_bad_trust_settings_are_a_config_error(data: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigError, match="invalid trust settings") as caught:
        TrustSettings.from_mapping(data)
    assert reason in str(caught.value)


def test_bad_trust_environment_fails_discovery_closed(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTEGRATIONS_TRUST", "{not json")

    with pytest.raises(ConfigError, match="INTEGRATIONS_TRUST: not valid JSON"):
        Registry(environment=False).discover()


# -- enforcement at discovery ------------------------------------------------------------------


def test_signed_manifest_verifies_and_loads_from_the_hashed_bytes(
    fake_site: FakeSite, key: Key
) -> None:
    signed = signed_distribution(fake_site, key)
    registry = trusting(key)

    info = info_of(registry, signed.name)
    assert (info.status, info.problem, info.signature, info.signed_by) == (
        Status.OK,
        None,
        "verified",
        key.key_id,
    )
    assert fake_site.imported() == []

    cls = registry.get(signed.name)

    module = sys.modules[signed.module]
    assert cls.__module__ == signed.module
    assert type(module.__loader__).__name__ == "_SignedSourceLoader"
    assert module.__file__ == str(signed.module_file)
    assert fake_site.imported() == [signed.dist.package, signed.module]
    row = registry.info(signed.name).to_json()
    assert (row["signature"], row["signed_by"]) == ("verified", key.key_id)


def test_the_signature_file_names_key_algorithm_and_hashes(fake_site: FakeSite, key: Key) -> None:
    signed = signed_distribution(fake_site, key)

    document = json.loads((signed.dist.manifest_path.parent / SIGNATURE_FILENAME).read_text())

    assert document["format"] == "integrations-manifest-signature/1"
    assert (document["algorithm"], document["key_id"]) == ("ed25519", key.key_id)
    assert document["modules"] == {
        signed.module: {"path": "connector.py", "sha256": _sha256(signed.module_file)}
    }
    manifest = json.loads(signed.dist.manifest_path.read_bytes())
    assert document["manifest_sha256"] == _sha256_bytes(rfc8785.dumps(manifest))


def _sha256(path: Path) -> str:
    return _sha256_bytes(path.read_bytes())


def _sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _tamper_module(signed: Signed) -> None:
    data = bytearray(signed.module_file.read_bytes())
    data[-2] ^= 0x01  # one byte of the last line
    signed.module_file.write_bytes(bytes(data))


def _tamper_manifest(signed: Signed) -> None:
    document = json.loads(signed.dist.manifest_path.read_bytes())
    document["connectors"][0]["description"] = "changed"
    signed.dist.manifest_path.write_text(json.dumps(document), encoding="utf-8")


def test_refusals_name_the_exact_reason_and_import_nothing(
    fake_site: FakeSite, tmp_path: Path, key: Key
) -> None:
    other = new_key(tmp_path, "other-1")
    impostor = Key(key.key_id, other.private, other.public)  # same id, another key
    cases: dict[str, tuple[Signed, str]] = {}

    unsigned = signed_distribution(fake_site, None, "unsigned")
    cases["unsigned"] = (unsigned, "unsigned: no manifest.sig beside the manifest")
    forged = signed_distribution(fake_site, impostor, "forged")
    cases["forged"] = (
        forged,
        f"bad signature: manifest.sig was not signed by key {key.key_id}",
    )
    unknown = signed_distribution(fake_site, new_key(tmp_path, "stranger"), "unknown")
    cases["unknown"] = (unknown, "signed with unknown key stranger (not a trusted key)")
    old = new_key(tmp_path, "old-key")
    revoked = signed_distribution(fake_site, old, "revoked")
    cases["revoked"] = (revoked, "signed with revoked key old-key")
    wrong_publisher = signed_distribution(
        fake_site,
        key,
        "publisher",
        signing={"required": True, "publisher_key_id": "someone-else"},
    )
    cases["publisher"] = (
        wrong_publisher,
        f"manifest signed with key {key.key_id}, the entry requires publisher key someone-else",
    )
    module_tampered = signed_distribution(fake_site, key, "module")
    signed_hash = _sha256(module_tampered.module_file)
    _tamper_module(module_tampered)
    cases["module"] = (
        module_tampered,
        f"module {module_tampered.module} (connector.py) does not match its signature "
        f"(sha256 {_sha256(module_tampered.module_file)}, signed {signed_hash})",
    )
    manifest_tampered = signed_distribution(fake_site, key, "manifest")
    _tamper_manifest(manifest_tampered)
    cases["manifest"] = (manifest_tampered, "manifest does not match its signature (sha256 ")
    malformed = signed_distribution(fake_site, key, "malformed")
    sig = malformed.dist.manifest_path.parent / SIGNATURE_FILENAME
    sig.write_text(json.dumps({**json.loads(sig.read_text()), "algorithm": "rsa"}))
    cases["malformed"] = (
        malformed,
        "manifest.sig is malformed: algorithm 'rsa' is not supported (only ed25519)",
    )
    registry = trusting(key, old, revoked=("old-key",))  # known, and revoked

    infos = {info.name: info for info in registry.discover()}
    for case, (signed, reason) in cases.items():
        info = infos[signed.name]
        assert info.status is Status.REFUSED, case
        assert info.problem is not None, case
        assert info.problem.startswith(reason), (case, info.problem)
        assert info.signature == ("unsigned" if case == "unsigned" else "invalid"), case
        with pytest.raises(ConnectorUnavailable, match="is refused"):
            registry.get(signed.name)
    assert fake_site.imported() == []


def test_entry_requiring_a_signature_is_refused_when_the_application_trusts_nothing(
    fake_site: FakeSite, key: Key
) -> None:
    signed = signed_distribution(fake_site, key, signing={"required": True})

    info = info_of(Registry(environment=False, allowed_modules=[]), signed.name)

    assert info.status is Status.REFUSED
    assert info.problem == f"signed with unknown key {key.key_id} (not a trusted key)"


def test_an_application_that_trusts_nothing_keeps_unsigned_manifests_usable(
    fake_site: FakeSite, key: Key
) -> None:
    unsigned = signed_distribution(fake_site, None, "plain")
    tampered = signed_distribution(fake_site, key, "unrequired")
    _tamper_module(tampered)  # nothing requires its signature, so nothing checks it
    registry = Registry(environment=False, allowed_modules=[])

    infos = {info.name: info for info in registry.discover()}

    for signed in (unsigned, tampered):
        assert (infos[signed.name].status, infos[signed.name].signature) == (Status.OK, None)
    assert registry.get(unsigned.name).__name__ == "FakeConnector"


def test_strict_discovery_raises_on_a_refused_signature(
    only_fake_distributions: FakeSite, key: Key
) -> None:
    signed = signed_distribution(only_fake_distributions, None)

    with pytest.raises(ConnectorUnavailable, match=f"{signed.name!r} is refused: unsigned"):
        trusting(key).discover(strict=True)


# -- the check again at import -----------------------------------------------------------------


def test_module_replaced_after_discovery_is_refused_at_get(fake_site: FakeSite, key: Key) -> None:
    signed = signed_distribution(fake_site, key)
    registry = trusting(key)
    assert info_of(registry, signed.name).status is Status.OK
    signed_hash = _sha256(signed.module_file)

    signed.module_file.write_text(
        signed.module_file.read_text() + "\nraise SystemExit('replaced')\n"
    )

    with pytest.raises(ConnectorUnavailable) as caught:
        registry.get(signed.name)
    expected = (
        f"connector {signed.name!r} is refused: module {signed.module} (connector.py) changed "
        f"after its signature was checked (sha256 {_sha256(signed.module_file)}, "
        f"signed {signed_hash})"
    )
    assert str(caught.value) == expected
    assert registry.info(signed.name).status is Status.REFUSED
    assert fake_site.imported() == []  # not even the parent package ran


def test_a_module_its_package_imports_runs_from_the_hashed_bytes(
    fake_site: FakeSite, key: Key
) -> None:
    signed = signed_distribution(fake_site, key, "eager")
    init = signed.dist.manifest_path.parent / "__init__.py"
    init.write_text(init.read_text() + "from . import connector\n", encoding="utf-8")
    registry = trusting(key)

    cls = registry.get(signed.name)

    module = sys.modules[signed.module]
    assert cls.__module__ == signed.module
    assert type(module.__loader__).__name__ == "_SignedSourceLoader"
    assert fake_site.imported() == [signed.dist.package, signed.module]
    assert not any(type(finder).__name__ == "_SignedModuleFinder" for finder in sys.meta_path)


def _shadow(signed: Signed, site: FakeSite) -> None:
    """A package of the connector module's name beside it, which Python's finder prefers."""
    shadow = signed.dist.manifest_path.parent / "connector"
    shadow.mkdir()
    (shadow / "__init__.py").write_text(
        site.connector_source() + "\nSHADOW = True\n", encoding="utf-8"
    )
    record = signed.dist.dist_info / "RECORD"  # installed by the distribution, so owned
    record.write_text(record.read_text() + f"{signed.dist.package}/connector/__init__.py,,\n")
    importlib.invalidate_caches()


def test_a_file_shadowing_the_signed_module_is_not_what_runs(fake_site: FakeSite, key: Key) -> None:
    signed = signed_distribution(fake_site, key, "shadowed")
    _shadow(signed, fake_site)
    init = signed.dist.manifest_path.parent / "__init__.py"
    init.write_text(init.read_text() + "from . import connector\n", encoding="utf-8")
    registry = trusting(key)

    registry.get(signed.name)

    module = sys.modules[signed.module]
    assert module.__file__ == str(signed.module_file)
    assert not hasattr(module, "SHADOW")


def test_a_module_imported_before_from_another_file_is_refused(
    fake_site: FakeSite, key: Key
) -> None:
    signed = signed_distribution(fake_site, key, "early")
    _shadow(signed, fake_site)
    registry = trusting(key)
    assert info_of(registry, signed.name).status is Status.OK
    early = importlib.import_module(signed.module)  # Python's finder takes the shadow
    assert early.SHADOW is True

    with pytest.raises(ConnectorUnavailable) as caught:
        registry.get(signed.name)

    assert str(caught.value) == (
        f"connector {signed.name!r} is refused: module {signed.module} is loaded from "
        f"{early.__file__}, not from its signed file {signed.module_file}"
    )


# -- the crypto library stays unloaded when nothing needs it -------------------------------------

_PROBE = """
import json, sys
from integrations.base.registry import Registry
registry = Registry()
infos = registry.discover()
everything = registry.connectors()
name = sys.argv[1]
cls = registry.get(name)
print(json.dumps({
    "status": {info.name: info.status.value for info in everything}[name],
    "cryptography": sorted(
        m for m in sys.modules if m.split(".")[0] in ("cryptography", "rfc8785")
    ),
}))
"""


def _probe(site: FakeSite, name: str, **environment: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, name],
        env=site.subprocess_environment(**environment),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_unsigned_site_requiring_nothing_never_imports_the_crypto_library(
    fake_site: FakeSite, key: Key
) -> None:
    unsigned = signed_distribution(fake_site, None, "plain")
    signed_distribution(fake_site, key, "signed-not-required")

    plain = _probe(fake_site, unsigned.name)

    assert plain == {"status": "ok", "cryptography": []}


def test_required_signatures_import_the_crypto_library(fake_site: FakeSite, key: Key) -> None:
    signed = signed_distribution(fake_site, key)
    trust = json.dumps({"keys": {key.key_id: key.public}, "require_signed_manifests": True})

    checked = _probe(fake_site, signed.name, INTEGRATIONS_TRUST=trust)

    assert checked["status"] == "ok"
    assert "cryptography" in checked["cryptography"]


# -- the command line --------------------------------------------------------------------------


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    runner = CliRunner(env={"COLUMNS": "400", **(env or {})})
    return runner.invoke(cli, list(args), catch_exceptions=False)


def test_keys_generate_prints_the_public_key_the_settings_take(tmp_path: Path) -> None:
    private = tmp_path / "publisher.pem"

    result = invoke("keys", "generate", str(private), "--key-id", "pub-1")

    assert result.exit_code == 0, result.output
    public, comment, line = result.output.splitlines()
    assert len(decode_public_key(public)) == 32
    assert comment == "# [governance.trust.keys] entry:"
    assert line == f'"pub-1" = "{public}"'
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    again = invoke("keys", "generate", str(private))
    assert again.exit_code == 1
    assert "exists; not overwriting a key" in again.output


def test_manifest_sign_then_verify_then_tamper(fake_site: FakeSite, key: Key) -> None:
    signed = signed_distribution(fake_site, None, "cli")
    manifest = str(signed.dist.manifest_path)

    sign = invoke("manifest", "sign", manifest, "--key", str(key.private), "--key-id", key.key_id)
    assert sign.exit_code == 0, sign.output
    assert sign.output.strip() == str(signed.dist.manifest_path.parent / SIGNATURE_FILENAME)

    trusted = f"{key.key_id}={key.public}"
    ok = invoke("manifest", "verify", manifest, "--public-key", trusted)
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip() == f"{manifest}: verified (key {key.key_id}, 1 modules)"

    untrusted = invoke("manifest", "verify", manifest)
    assert untrusted.exit_code == 1
    assert f"signed with unknown key {key.key_id}" in untrusted.output

    _tamper_module(signed)
    bad = invoke("manifest", "verify", manifest, "--public-key", trusted)
    assert bad.exit_code == 1
    assert f"module {signed.module} (connector.py) does not match its signature" in bad.output


def test_list_and_doctor_show_the_signature_column(
    only_fake_distributions: FakeSite, key: Key
) -> None:
    good = signed_distribution(only_fake_distributions, key, "good")
    bad = signed_distribution(only_fake_distributions, key, "bad")
    _tamper_manifest(bad)
    trust = json.dumps({"keys": {key.key_id: key.public}, "require_signed_manifests": True})
    env = {"INTEGRATIONS_TRUST": trust}

    listed = {row["name"]: row for row in json.loads(invoke("list", "--json", env=env).output)}
    table = invoke("list", env=env).output
    doctor = invoke("doctor", "--json", env=env)

    assert (listed[good.name]["signature"], listed[good.name]["signed_by"]) == (
        "verified",
        key.key_id,
    )
    assert listed[bad.name]["status"] == "refused"
    assert listed[bad.name]["signature"] == "invalid"
    assert listed[bad.name]["problem"].startswith("manifest does not match its signature")
    assert "signature" in table.splitlines()[1]
    assert f"verified ({key.key_id})" in table
    assert doctor.exit_code == 1
    doctor_rows = {row["name"]: row for row in json.loads(doctor.output)}
    assert doctor_rows[good.name]["status"] == "ok"
    assert doctor_rows[good.name]["loaded"] is True
    assert doctor_rows[bad.name]["status"] == "refused"


def test_list_without_checked_signatures_has_no_signature_column(
    only_fake_distributions: FakeSite,
) -> None:
    signed_distribution(only_fake_distributions, None, "plain")

    table = invoke("list").output

    assert "signature" not in table.splitlines()[1]
