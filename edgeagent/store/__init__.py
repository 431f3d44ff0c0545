"""The object store: a memory tier and a disk tier, both LRU and bounded by bytes.

- `objects`: what is stored (`ObjectMeta`) and the handle a lookup returns (`CachedObject`).
- `tiers`: `Store`, both tiers, their indexes (per distribution, Vary layouts), lookups,
  commits, refreshes, invalidations and the verification of bodies after a restart.
- `writer`: `Writer`, one response streamed into the store.
- `diskformat`: the files of the disk tier (paths, meta records, the scan at start).
- `writebehind`: the thread that persists small objects off the event loop.
"""

from .objects import CachedObject, ObjectMeta
from .tiers import Store
from .writer import Writer

__all__ = ["CachedObject", "ObjectMeta", "Store", "Writer"]
