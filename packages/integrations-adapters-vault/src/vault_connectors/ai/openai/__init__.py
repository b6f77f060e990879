"""Legacy import path of the OpenAI connector (deprecated; see `vault_connectors`)."""
