"""Legacy import path of the memory adapters; see `integrations.adapters.memory_adapters`."""
