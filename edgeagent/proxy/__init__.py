"""Request handling at the edge, one module per phase of a request.

- `admission`: the one decision before the cache is asked (distribution, behavior,
  viewer protocol, methods, the place for access checks), for hits and misses alike.
- `hit`: the synchronous fast path for fresh memory hits, and its routing memo (`Route`).
- `fill`: cached methods on a miss: collapsed origin fetches (`Fill`, `Subscription`), the
  store decision, 304 merging and stale-if-error, streaming to every waiting viewer.
- `passthrough`: origin requests with failover, and answers that bypass the cache.
- `respond`: the one head builder, `ResponseWriter`, stored objects (conditionals,
  ranges), the edge's own error texts and the custom error pages.
- `compress`: the compression choice and the br/gzip encoders.
- `context`: `Ctx` (one request) and `ProxyState` (the collaborators the agent passes in).
- `app`: `Proxy`, which the server drives: `hit`, then `handle` for the rest.
"""

from .app import Proxy

__all__ = ["Proxy"]
