"""Legacy import path of the intent adapters; see `integrations.adapters.intent_adapters`.

Deprecated. The modules the legacy code imported still work, on the new code underneath, and
each name warns (`DeprecationWarning`, naming its replacement) when it is used:

- ``intent_adapters.base.SignalAdapter``: a signal source; any subclass is a `SignalSource`;
- ``intent_adapters.collector.collect_signals``: the collector (`collect`), concurrently;
- ``intent_adapters.social.SocialAdapter``, ``intent_adapters.enterprise.EnterpriseAdapter``:
  the sample sources, one sample signal each;
- ``intent_adapters.uaal``: the alignment check, through the ``intent.engine`` connector;
- ``intent_adapters.foundary.get_risk_score``: kept as a name only; it fails, with the reason.

The migration guide shows the replacement of each name.
"""
