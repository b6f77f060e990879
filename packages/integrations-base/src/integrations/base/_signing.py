"""Signed manifests: what a publisher signs, how it is checked, and how a signed module loads.

A publisher signs, with an Ed25519 key, the canonical form of a *payload* that names the key,
the SHA-256 of the manifest's canonical JSON and the SHA-256 of every module file the
manifest's entries point at. The payload and the signature travel as ``manifest.sig`` beside
``manifest.json``. Checking a manifest reads that file, hashes the manifest and the module
files, and verifies the one signature; the crypto library (``cryptography``, the ``signing``
extra) is imported only then, so sites that require no signature never load it.

Canonical JSON is RFC 8785 (JCS). Manifests hold strings, integers, booleans and nulls with
ASCII keys, and for such documents JCS is exactly ``json.dumps`` with sorted keys, no
whitespace and UTF-8 output; those are written that way, and anything else (floats, integers
beyond 2**53, non-ASCII keys) goes to the ``rfc8785`` package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from ._exceptions import SigningError
from ._trust import KEY_ID_PATTERN, TrustPolicy, encode_public_key

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "ALGORITHM",
    "SIGNATURE_FILENAME",
    "SIGNATURE_FORMAT",
    "ManifestVerdict",
    "SignedModule",
    "canonical_json",
    "generate_key",
    "load_signed_module",
    "sign_manifest",
    "verify_manifest",
]

SIGNATURE_FILENAME: Final = "manifest.sig"
SIGNATURE_FORMAT: Final = "integrations-manifest-signature/1"
"""Names the payload's layout; signed with it, so a signature never verifies as another format."""
ALGORITHM: Final = "ed25519"

_MISSING_EXTRA = (
    "signature checks need the cryptography package: pip install 'integrations-base[signing]'"
)
_UNSIGNED = f"unsigned: no {SIGNATURE_FILENAME} beside the manifest"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SAFE_INTEGER = 2**53 - 1


# -- canonical JSON --------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical form of a JSON value (as `json.loads` returns it), in UTF-8.

    Raises `SigningError` for a value JCS cannot represent (a lone surrogate, an integer
    beyond the range of an IEEE 754 double).
    """
    return _canonical(value, _plain(value))


def _canonical(value: Any, plain: bool) -> bytes:
    try:
        if plain:
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            return text.encode("utf-8")
        return _rfc8785(value)
    except (UnicodeEncodeError, ValueError, TypeError) as error:
        raise SigningError(f"not canonicalisable JSON: {error}") from None


def _load(data: bytes) -> tuple[Any, bool]:
    """Parse a JSON document and tell whether it is plain (see `_plain`) on the way.

    Raises `ValueError` for invalid JSON. A document of ASCII bytes without ``\\u`` escapes has
    ASCII keys only, and the parser reports any float or out-of-range integer, so the walk
    over the value is needed only for other documents.
    """
    unusual: list[str] = []

    def number(text: str) -> float:
        unusual.append(text)
        return float(text)

    def integer(text: str) -> int:
        value = int(text)
        if not -_SAFE_INTEGER <= value <= _SAFE_INTEGER:
            unusual.append(text)
        return value

    value = json.loads(data, parse_float=number, parse_int=integer)
    if unusual:
        return value, False
    if data.isascii() and b"\\u" not in data:
        return value, True
    return value, _plain(value)


def _plain(value: Any) -> bool:
    """Whether `value` holds only what `json.dumps` writes exactly as JCS does.

    That is: no floats (JCS writes numbers the ECMAScript way), integers within ±(2**53-1),
    and ASCII keys (JCS sorts keys by UTF-16 code units, which differs from code points only
    beyond ASCII). Walked iteratively; the depth of a manifest is small.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not key.isascii():
                    return False
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        elif isinstance(item, int):
            if not -_SAFE_INTEGER <= item <= _SAFE_INTEGER:
                return False
        else:
            return False
    return True


def _rfc8785(value: Any) -> bytes:
    try:
        import rfc8785
    except ImportError:
        raise SigningError(_MISSING_EXTRA.replace("cryptography", "rfc8785")) from None
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as error:
        raise ValueError(str(error)) from None


# -- files and modules -----------------------------------------------------------------------


def _read(path: str | Path) -> bytes:
    """A file's bytes, through the plain system calls (discovery reads a thousand of them)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(descriptor, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(descriptor)
    return b"".join(chunks)


def _sha256_of(path: str | Path) -> tuple[str, bytes]:
    """The hex SHA-256 of a file and its bytes (read once)."""
    data = _read(path)
    return hashlib.sha256(data).hexdigest(), data


def _module_forms(package_dir: Path, module: str) -> tuple[str, ...] | None:
    """The files (relative to `package_dir`, ``/``-separated) `module` may be loaded from.

    The package directory's trailing names must spell a leading part of the module's dotted
    name: ``…/integrations/mocks`` holds ``integrations.mocks.mock_connector`` as
    ``mock_connector.py`` or ``mock_connector/__init__.py``. None when the module does not
    live under the directory.
    """
    return _forms(package_dir.parts, module)


def _forms(tail: tuple[str, ...], module: str) -> tuple[str, ...] | None:
    """`_module_forms` for a package directory given as its path's parts."""
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        if tuple(tail[-length:]) == tuple(parts[:length]):
            rest = parts[length:]
            if not rest:
                return ("__init__.py",)
            stem = "/".join(rest)
            return (f"{stem}/__init__.py", f"{stem}.py")
    return None


def _module_file(package_dir: Path, module: str) -> str:
    """The file of `module` under `package_dir` a signature records (a package wins)."""
    forms = _module_forms(package_dir, module)
    if forms is None:
        raise SigningError(f"module {module} does not live under {package_dir}")
    for form in forms:
        if (package_dir / form).is_file():
            return form
    raise SigningError(f"module {module}: no {' or '.join(forms)} under {package_dir}")


# -- keys --------------------------------------------------------------------------------------


def _crypto() -> Any:
    """The Ed25519 module of `cryptography`, imported on first use."""
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise SigningError(_MISSING_EXTRA) from None
    return ed25519


def generate_key(private_key_file: Path) -> str:
    """Write a new Ed25519 private key (PEM, PKCS#8) with mode 0600; return its public key.

    The public key is returned as the trust settings take it (base64 of the raw key). An
    existing file is never overwritten.
    """
    key = _crypto().Ed25519PrivateKey.generate()
    from cryptography.hazmat.primitives import serialization

    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        descriptor = os.open(private_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SigningError(f"{private_key_file} exists; not overwriting a key") from None
    except OSError as error:
        raise SigningError(f"cannot write {private_key_file}: {error.strerror}") from None
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(file.fileno(), 0o600)  # whatever the umask left
        file.write(pem)
    return encode_public_key(_public_bytes(key))


def _public_bytes(key: Ed25519PrivateKey) -> bytes:
    raw: bytes = key.public_key().public_bytes_raw()
    return raw


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    _crypto()  # a clear error when the signing extra is missing
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        data = path.read_bytes()
    except OSError as error:
        raise SigningError(f"cannot read key {path}: {error.strerror or error}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise SigningError(f"{path} is not an unencrypted PEM private key: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path} is not an Ed25519 private key")
    return key


# -- signing -----------------------------------------------------------------------------------


def _read_manifest_document(manifest: Path) -> tuple[bytes, Any]:
    try:
        data = manifest.read_bytes()
    except OSError as error:
        raise SigningError(f"cannot read {manifest}: {error.strerror or error}") from None
    try:
        document = json.loads(data)
    except ValueError as error:
        raise SigningError(f"{manifest}: not valid JSON: {error}") from None
    return data, document


def _entry_modules(document: Any) -> list[str]:
    """The module of every entry of a manifest document, in order, each once."""
    entries = document.get("connectors", []) if isinstance(document, dict) else []
    modules = [entry.get("module") for entry in entries if isinstance(entry, dict)]
    return list(dict.fromkeys(module for module in modules if isinstance(module, str)))


def sign_manifest(manifest: Path, private_key_file: Path, key_id: str) -> Path:
    """Sign `manifest` and the module files its entries name; write ``manifest.sig`` beside it.

    Module files are found from the manifest's directory (the package directory), so the
    signature can be made in a source tree before the wheel is built. Returns the path written.
    """
    if not re.match(KEY_ID_PATTERN, key_id):
        raise SigningError(f"key id {key_id!r} does not match {KEY_ID_PATTERN}")
    key = _load_private_key(private_key_file)
    _, document = _read_manifest_document(manifest)
    package_dir = manifest.resolve().parent
    modules: dict[str, dict[str, str]] = {}
    for module in _entry_modules(document):
        relative = _module_file(package_dir, module)
        digest, _ = _sha256_of(package_dir / relative)
        modules[module] = {"path": relative, "sha256": digest}
    payload = {
        "format": SIGNATURE_FORMAT,
        "algorithm": ALGORITHM,
        "key_id": key_id,
        "manifest_sha256": hashlib.sha256(canonical_json(document)).hexdigest(),
        "modules": modules,
    }
    signature = key.sign(canonical_json(payload))
    signed = {**payload, "signature": base64.b64encode(signature).decode("ascii")}
    target = manifest.with_name(SIGNATURE_FILENAME)
    target.write_text(json.dumps(signed, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


# -- verifying ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedModule:
    """A module file whose hash the signature covers and discovery found intact."""

    path: str
    sha256: str


@dataclass(frozen=True, slots=True)
class ManifestVerdict:
    """What checking one manifest's signature found.

    `problem` concerns the whole manifest (no signature, unknown key, bad signature, the
    manifest changed); `module_problems` the module files that do not match; `modules` the
    files that do, kept so that `get()` can hash them again right before the import.
    """

    key_id: str | None
    problem: str | None
    modules: Mapping[str, SignedModule] = field(default_factory=dict)
    module_problems: Mapping[str, str] = field(default_factory=dict)

    @property
    def unsigned(self) -> bool:
        """Whether the manifest has no signature at all."""
        return self.problem == _UNSIGNED

    def problem_for(self, module: str, publisher_key_id: str | None) -> str | None:
        """Why an entry pointing at `module` (and naming `publisher_key_id`) is refused."""
        if self.problem is not None:
            return self.problem
        if publisher_key_id is not None and publisher_key_id != self.key_id:
            return (
                f"manifest signed with key {self.key_id}, "
                f"the entry requires publisher key {publisher_key_id}"
            )
        return self.module_problems.get(module)


def _refused(problem: str, key_id: str | None = None) -> ManifestVerdict:
    return ManifestVerdict(key_id, problem)


def _read_signature(manifest: Path) -> tuple[dict[str, Any], bool] | str:
    """The parsed ``manifest.sig`` beside `manifest` (and whether it is plain JSON), or why
    there is none usable."""
    path = os.path.join(os.path.dirname(manifest), SIGNATURE_FILENAME)
    try:
        data = _read(path)
    except FileNotFoundError:
        return _UNSIGNED
    except OSError as error:
        return f"cannot read {SIGNATURE_FILENAME}: {error.strerror or error}"
    try:
        signed, plain = _load(data)
    except (ValueError, RecursionError):
        return f"{SIGNATURE_FILENAME} is not valid JSON"
    shape = _shape_problem(signed)
    if shape is not None:
        return f"{SIGNATURE_FILENAME} is malformed: {shape}"
    assert isinstance(signed, dict)  # _shape_problem checked it
    return signed, plain


def _shape_problem(signed: Any) -> str | None:
    if not isinstance(signed, dict):
        return "not an object"
    if signed.get("format") != SIGNATURE_FORMAT:
        return f"format is {signed.get('format')!r}, expected {SIGNATURE_FORMAT!r}"
    if signed.get("algorithm") != ALGORITHM:
        return f"algorithm {signed.get('algorithm')!r} is not supported (only {ALGORITHM})"
    for name in ("key_id", "manifest_sha256", "signature"):
        if not isinstance(signed.get(name), str):
            return f"{name} must be a string"
    if not _SHA256.match(signed["manifest_sha256"]):
        return "manifest_sha256 is not a SHA-256 in hex"
    modules = signed.get("modules")
    if not isinstance(modules, dict):
        return "modules must be an object"
    for name, item in modules.items():
        if not (
            isinstance(item, dict)
            and isinstance(item.get("path"), str)
            and isinstance(item.get("sha256"), str)
            and _SHA256.match(item["sha256"])
        ):
            return f"modules.{name} must hold a path and a SHA-256 in hex"
    return None


def verify_manifest(
    manifest: Path, data: bytes, modules: Iterable[str], trust: TrustPolicy
) -> ManifestVerdict:
    """Check the signature of `manifest` (whose bytes are `data`) against `trust`.

    Order: the signature file, the key (revoked, then unknown), the manifest's hash, the
    signature itself, then each of `modules` (the modules the entries name), whose files
    are hashed; nothing is imported but the crypto library.
    """
    found = _read_signature(manifest)
    if isinstance(found, str):
        return _refused(found)
    signed, plain = found
    key_id: str = signed["key_id"]
    if key_id in trust.revoked:
        return _refused(f"signed with revoked key {key_id}", key_id)
    public_key = trust.keys.get(key_id)
    if public_key is None:
        return _refused(f"signed with unknown key {key_id} (not a trusted key)", key_id)
    try:
        digest = hashlib.sha256(_canonical(*_load(data))).hexdigest()
    except (ValueError, RecursionError, SigningError) as error:
        return _refused(f"manifest cannot be canonicalised: {error}", key_id)
    if digest != signed["manifest_sha256"]:
        return _refused(
            f"manifest does not match its signature (sha256 {digest}, "
            f"signed {signed['manifest_sha256']})",
            key_id,
        )
    try:
        problem = _signature_problem(signed, plain, public_key)
    except SigningError as error:  # the signing extra is not installed
        problem = str(error)
    if problem is not None:
        return _refused(problem, key_id)
    return _check_modules(os.path.dirname(manifest), signed["modules"], modules, key_id)


def _signature_problem(signed: dict[str, Any], plain: bool, public_key: bytes) -> str | None:
    from cryptography.exceptions import InvalidSignature

    try:
        signature = base64.b64decode(signed["signature"], validate=True)
    except (binascii.Error, ValueError):
        return f"{SIGNATURE_FILENAME}: signature is not base64"
    payload = {name: value for name, value in signed.items() if name != "signature"}
    try:
        message = _canonical(payload, plain)  # a subset of a plain document is plain
    except SigningError as error:
        return f"{SIGNATURE_FILENAME}: {error}"
    try:
        _public_key(public_key).verify(signature, message)
    except InvalidSignature:
        return f"bad signature: {SIGNATURE_FILENAME} was not signed by key {signed['key_id']}"
    return None


_public_keys: dict[bytes, Any] = {}
"""Loaded public keys by their raw bytes: a publisher's key signs many manifests."""


def _public_key(raw: bytes) -> Any:
    key = _public_keys.get(raw)
    if key is None:
        key = _public_keys[raw] = _crypto().Ed25519PublicKey.from_public_bytes(raw)
    return key


def _check_modules(
    package_dir: str, signed: Mapping[str, Any], modules: Iterable[str], key_id: str
) -> ManifestVerdict:
    verified: dict[str, SignedModule] = {}
    problems: dict[str, str] = {}
    tail = tuple(package_dir.split(os.sep))
    for module in modules:
        item = signed.get(module)
        if item is None:
            problems[module] = f"module {module} is not covered by the signature"
            continue
        relative = item["path"]
        forms = _forms(tail, module)
        if forms is None or relative not in forms:
            problems[module] = f"signature names {relative!r}, not a file of module {module}"
            continue
        path = os.path.join(package_dir, relative)
        try:
            digest, _ = _sha256_of(path)
        except OSError as error:
            problems[module] = f"cannot read module {module} ({relative}): {error.strerror}"
            continue
        if digest != item["sha256"]:
            problems[module] = (
                f"module {module} ({relative}) does not match its signature "
                f"(sha256 {digest}, signed {item['sha256']})"
            )
            continue
        verified[module] = SignedModule(path, digest)
    return ManifestVerdict(key_id, None, verified, problems)


# -- loading a signed module -------------------------------------------------------------------


class _SignedSourceLoader(importlib.machinery.SourceFileLoader):
    """Runs exactly the bytes that were hashed: no second read, no bytecode cache."""

    def __init__(self, fullname: str, path: str, source: bytes) -> None:
        super().__init__(fullname, path)
        self._source = source

    def get_code(self, fullname: str) -> Any:
        return compile(self._source, self.path, "exec", dont_inherit=True)


class _SignedModuleFinder(importlib.abc.MetaPathFinder):
    """Answers for one module only, with the bytes that were hashed, ahead of every finder.

    Installed while the registry imports a signed module, so that the module is executed from
    those bytes even when its parent package's ``__init__`` imports it first.
    """

    def __init__(self, module: str, path: str, source: bytes) -> None:
        self._module = module
        self._path = path
        self._source = source

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self._module:
            return None
        loader = _SignedSourceLoader(fullname, self._path, self._source)
        package = os.path.basename(self._path) == "__init__.py"
        return importlib.util.spec_from_file_location(
            fullname,
            self._path,
            loader=loader,
            submodule_search_locations=[os.path.dirname(self._path)] if package else None,
        )


def load_signed_module(module: str, signed: SignedModule) -> ModuleType:
    """Hash the module's file again, then import it from those very bytes.

    Raises `SigningError` when the file changed since discovery checked it. The parent
    package is imported the ordinary way, but the module itself, whoever imports it first
    (the parent's ``__init__``, say), is executed from the bytes just hashed: no second read
    of the file, no bytecode cache. A module imported before (by other code) is accepted only
    when it was loaded from the signed file.
    """
    try:
        digest, source = _sha256_of(signed.path)
    except OSError as error:
        raise SigningError(f"cannot read signed module {module}: {error.strerror}") from None
    if digest != signed.sha256:
        raise SigningError(
            f"module {module} ({os.path.basename(signed.path)}) changed after its signature "
            f"was checked (sha256 {digest}, signed {signed.sha256})"
        )
    loaded = sys.modules.get(module)
    if loaded is None:
        finder = _SignedModuleFinder(module, signed.path, source)
        sys.meta_path.insert(0, finder)
        try:
            loaded = importlib.import_module(module)
        finally:
            sys.meta_path.remove(finder)
    origin = getattr(loaded, "__file__", None)
    if origin is None or os.path.realpath(origin) != os.path.realpath(signed.path):
        raise SigningError(
            f"module {module} is loaded from {origin}, not from its signed file {signed.path}"
        )
    return loaded
