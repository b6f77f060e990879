"""Legacy import path of the memory adapters; see `integrations.adapters.memory_adapters`.

Deprecated. `memory_adapters.knowledge_vault` keeps the old Knowledge Vault client working
(``KNOWLEDGE_VAULT_URL``, ``query_vault``) on top of the ``memory.knowledge_vault``
connector, and warns on use; the migration guide shows the replacement of each name.
"""
