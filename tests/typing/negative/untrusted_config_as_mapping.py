# expect-error: arg-type
"""A deliberate type error: tenant input, wrapped as untrusted, handed to a trusted path.

`UntrustedConfig` is not a mapping so that code validating configs as trusted cannot take
it; `tools/check_typing_bites.py` requires mypy to reject this file with `arg-type`.
"""

from integrations.base import UntrustedConfig
from integrations.mocks import MockConfig


def validate_as_trusted(tenant_input: UntrustedConfig) -> MockConfig:
    return MockConfig.from_mapping(tenant_input)
