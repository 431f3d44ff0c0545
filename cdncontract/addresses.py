"""Which origin addresses are inside the operator's own network (docs/operations.md, "Origins and the
operator's network").

One rule for both halves: the control plane refuses such an origin when it is saved, and the
edge refuses to connect to one after resolving its name (so a name that later resolves
elsewhere, DNS rebinding, is caught where the connection is made). IPv4-mapped IPv6
addresses (::ffff:127.0.0.1) are judged as the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress

from .errors import ContractError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The ranges that are not one of the classes below but are not on the public internet
# either (shared address space, benchmarking, documentation, reserved): "not global".
_CLASSES = (
    ("unspecified", lambda ip: ip.is_unspecified),
    ("loopback", lambda ip: ip.is_loopback),
    ("link-local", lambda ip: ip.is_link_local),
    ("private", lambda ip: ip.is_private),
    ("multicast", lambda ip: ip.is_multicast),
    ("reserved", lambda ip: ip.is_reserved),
    ("non-public", lambda ip: not ip.is_global),
)


def internal_class(address: str | IPAddress) -> str | None:
    """The class of an address an origin may not use ("loopback", "link-local", ...), or None.

    169.254.169.254 (the cloud metadata address) is link-local; `fd00::/8` is private.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for name, test in _CLASSES:
        if test(ip):
            return name
    return None


def check_public(host: str, addresses: list[str]) -> None:
    """Refuse `host` when any of the addresses it resolved to is internal."""
    for address in addresses:
        found = internal_class(address)
        if found is not None:
            shown = host if host == address else f"{host} ({address})"
            raise ContractError(f"{shown} is a {found} address: origins in the operator's own network are "
                                "refused on this CDN (CDN_REFUSE_INTERNAL_ORIGINS)")
