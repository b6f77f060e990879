"""Legacy import path of the AI provider connectors (deprecated; see `vault_connectors`)."""
