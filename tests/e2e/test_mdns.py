"""mDNS: Moonlight finds the host by browsing `_nvstream._tcp` (PROTOCOL.md §6)."""

from __future__ import annotations

import socket
import time

import pytest
from zeroconf import ServiceBrowser, ServiceListener, Zeroconf

SERVICE = "_nvstream._tcp.local."


class Found(ServiceListener):
    def __init__(self) -> None:
        self.services: dict[str, tuple[int, list[str]]] = {}

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        info = zc.get_service_info(type_, name, timeout=3000)
        if info:
            self.services[name] = (info.port, info.parsed_addresses())

    update_service = add_service

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        pass


def multicast_possible() -> str | None:
    """Why multicast on loopback cannot work here, or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
            s.sendto(b"x", ("224.0.0.251", 5353))
    except OSError as error:
        return f"cannot send multicast on loopback: {error}"
    return None


def test_host_is_found_by_mdns(make_host):
    reason = multicast_possible()
    if reason:
        pytest.skip(reason)
    host = make_host('hostname = "Hati mDNS test"\n', mdns=True).start()
    zc = Zeroconf(interfaces=["127.0.0.1"])
    listener = Found()
    browser = ServiceBrowser(zc, SERVICE, listener)
    try:
        deadline = time.monotonic() + 15
        name = f"Hati mDNS test.{SERVICE}"
        while time.monotonic() < deadline and name not in listener.services:
            time.sleep(0.2)
        assert name in listener.services, f"found only {listener.services}"
        port, addresses = listener.services[name]
        assert port == host.http_port
        assert "127.0.0.1" in addresses
    finally:
        browser.cancel()
        zc.close()
