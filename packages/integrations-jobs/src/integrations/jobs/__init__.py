"""Sync pipelines: records from a source connector into a destination connector, per tenant.

Every batch runs through governed sessions on both sides; the source's state is committed as a
checkpoint only after the destination accepted the batch, under a lease with a fencing token.
"""

__all__: list[str] = []
