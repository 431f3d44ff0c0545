"""The contract between the control plane and the edges, defined once and imported by both.

Names, limits and syntax rules of the edge config document, the stats report, the
invalidation message, the admin request signature and the cache-key format. The package
imports nothing from `distributions/` or `edgeagent/` and never Django, so the edge can
install it alone; each side wraps `ContractError` in its own error (a field error of the
API, a `ConfigError` naming the document path at the edge). docs/edge-config.md describes
the document these rules govern.
"""
