"""Legacy import path of the vault connectors; see `integrations.adapters.vault_connectors`.

Deprecated. `vault_connectors.ai.openai.connector` keeps the old OpenAI connector working
(``ConnectorConfig``, ``VaultAuthProvider``, ``OpenAIConnector``) on top of the
``vault.openai`` connector and a governed session, and warns on use; the migration guide
shows the replacement of each name.
"""
