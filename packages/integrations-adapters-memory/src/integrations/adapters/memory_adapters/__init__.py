"""Memory store connectors of the integrations framework.

The registry of `integrations-base` finds this package through the `manifest.json` next to
this file, which the `integrations.manifests` entry point of `integrations-adapters-memory`
announces. The registry imports connectors lazily by module and class name, so this module
exports nothing itself.
"""

__all__: list[str] = []
