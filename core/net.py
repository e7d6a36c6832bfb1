"""Client addresses as the per-address limits count them."""

from __future__ import annotations

import ipaddress


def address_group(ip: str) -> str:
    """An IPv4 address as it is, an IPv6 address as its /64 (one subscriber usually holds a
    whole /64, so counting single IPv6 addresses would limit nobody), an IPv4-mapped IPv6
    address as its IPv4 address; anything unparsable unchanged."""
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(a, ipaddress.IPv6Address):
        if a.ipv4_mapped is not None:
            return str(a.ipv4_mapped)
        return str(ipaddress.IPv6Network((a, 64), strict=False))
    return str(a)
