"""HashiCorp Vault as a secret provider: ``vault:<mount>/data/<path>#<key>`` references.

`VaultSecretProvider` serves the ``vault`` scheme of `integrations.base.SecretResolver`. The
distribution announces it in the ``integrations.secret_providers`` entry-point group, so a
resolver that meets a ``vault:`` reference loads it by itself, configured from the
``VAULT_*`` environment variables (`VaultSettings.from_env`); code that wants other settings
builds one and gives it to the resolver. Reading needs the ``hashicorp`` extra (hvac).
"""

from ._config import ENVIRONMENT, VaultSettings
from ._provider import VaultSecretProvider
from ._reference import VaultReference

__all__ = ["ENVIRONMENT", "VaultReference", "VaultSecretProvider", "VaultSettings"]
