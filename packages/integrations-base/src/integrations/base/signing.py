"""Signed manifests: sign a manifest and the modules it names, check a signature, trust keys.

A publisher signs with an Ed25519 key; ``manifest.sig`` beside ``manifest.json`` carries the
key id, the SHA-256 of the manifest's canonical JSON (RFC 8785) and of each module file the
entries name, and the signature. An application trusts keys through `TrustPolicy` (or the
``[governance.trust]`` settings); the registry refuses an entry that must verify and does
not, before anything is imported. Signing and checking need the ``signing`` extra
(``integrations-base[signing]``); importing this module does not import the crypto library.

```python
from pathlib import Path

from integrations.base.signing import generate_key, sign_manifest

public_key = generate_key(Path("publisher.pem"))  # private key written with mode 0600
sign_manifest(Path("src/acme_integrations/manifest.json"), Path("publisher.pem"), "acme-2026")
```
"""

from __future__ import annotations

from ._signing import (
    ALGORITHM,
    SIGNATURE_FILENAME,
    SIGNATURE_FORMAT,
    ManifestVerdict,
    SignedModule,
    canonical_json,
    generate_key,
    sign_manifest,
    verify_manifest,
)
from ._trust import TRUST_ENV, TrustPolicy, TrustSettings, decode_public_key, encode_public_key

__all__ = [
    "ALGORITHM",
    "SIGNATURE_FILENAME",
    "SIGNATURE_FORMAT",
    "TRUST_ENV",
    "ManifestVerdict",
    "SignedModule",
    "TrustPolicy",
    "TrustSettings",
    "canonical_json",
    "decode_public_key",
    "encode_public_key",
    "generate_key",
    "sign_manifest",
    "verify_manifest",
]
