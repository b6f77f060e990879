"""Versions: the contract's own semantic version, distinct from the distribution's."""

from typing import Final

CONTRACT_VERSION: Final = "1.1.0"
"""Semantic version of the connector contract (models, methods, error tree).

A major bump means connectors written for an older major no longer fit; manifests declare the
contract versions their connectors support, and the registry checks them before any import.
"""
