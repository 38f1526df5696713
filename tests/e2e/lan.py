"""Tools of a hostile neighbour on the LAN, for the end-to-end tests: a loopback sniffer (what
anyone on the same network segment sees of the client's UDP traffic) and a bare ENet client
that can connect to the control port and send whatever it captured."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

ETH_P_ALL = 0x0003
PACKET_HOST = 0  # the received copy of a loopback packet (the sent copy is PACKET_OUTGOING)


class UdpSniffer:
    """Captures the payloads of UDP datagrams to `port` on loopback (needs root)."""

    def __init__(self, port: int):
        self.port = port
        self.datagrams: list[tuple[float, tuple[str, int], bytes]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        try:
            self._socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL))
        except PermissionError as error:
            import pytest

            pytest.skip(f"sniffing loopback needs root (CAP_NET_RAW): {error}")
        self._socket.bind(("lo", 0))
        self._socket.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, address = self._socket.recvfrom(65535)
            except socket.timeout:
                continue
            if address[2] != PACKET_HOST or len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
            header_len = (ip[0] & 0x0F) * 4
            if ip[9] != socket.IPPROTO_UDP:
                continue
            udp = ip[header_len:]
            source_port, destination_port, length = struct.unpack(">HHH", udp[:6])
            if destination_port != self.port:
                continue
            source = (socket.inet_ntoa(ip[12:16]), source_port)
            with self._lock:
                self.datagrams.append((time.monotonic(), source, bytes(udp[8:length])))

    def captured(self) -> list[tuple[float, tuple[str, int], bytes]]:
        with self._lock:
            return list(self.datagrams)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._socket.close()


# ENet commands (include/enet/protocol.h) and the sizes of their fixed parts.
ACKNOWLEDGE, CONNECT, VERIFY_CONNECT, DISCONNECT, PING = 1, 2, 3, 4, 5
SEND_RELIABLE, SEND_UNRELIABLE, SEND_FRAGMENT, SEND_UNSEQUENCED = 6, 7, 8, 9
COMMAND_SIZES = {1: 8, 2: 48, 3: 44, 4: 8, 5: 4, 6: 6, 7: 8, 8: 24, 9: 8, 10: 12, 11: 16, 12: 24}
FLAG_ACK = 0x80
HEADER_SENT_TIME = 0x8000


def enet_payloads(datagram: bytes) -> list[bytes]:
    """The application payloads of the send commands in one ENet datagram."""
    if len(datagram) < 2:
        return []
    peer_id = struct.unpack(">H", datagram[:2])[0]
    offset = 4 if peer_id & HEADER_SENT_TIME else 2
    payloads = []
    while offset + 4 <= len(datagram):
        number = datagram[offset] & 0x0F
        size = COMMAND_SIZES.get(number)
        if size is None or offset + size > len(datagram):
            break
        data_len = 0
        if number == SEND_RELIABLE:
            data_len = struct.unpack(">H", datagram[offset + 4 : offset + 6])[0]
        elif number in (SEND_UNRELIABLE, SEND_UNSEQUENCED):
            data_len = struct.unpack(">H", datagram[offset + 6 : offset + 8])[0]
        elif number in (SEND_FRAGMENT, 12):
            data_len = struct.unpack(">H", datagram[offset + 6 : offset + 8])[0]
        if number in (SEND_RELIABLE, SEND_UNRELIABLE, SEND_UNSEQUENCED):
            payloads.append(datagram[offset + size : offset + size + data_len])
        offset += size + data_len
    return payloads


def connect_datagram(connect_id: int, data: int) -> bytes:
    """A CONNECT as moonlight-common-c's ENet sends it (no peer yet, sent time, ACK flag)."""
    header = struct.pack(">HH", 0x0FFF | HEADER_SENT_TIME, int(time.monotonic() * 1000) & 0xFFFF)
    command = struct.pack(">BBH", CONNECT | FLAG_ACK, 0xFF, 1)
    command += struct.pack(">HBB", 0, 0xFF, 0xFF)
    command += struct.pack(">10I", 1392, 32768, 0x30, 0, 0, 5000, 2, 2, connect_id, data)
    return header + command


class EnetPeer:
    """A minimal ENet client: connects, then sends reliable packets on channel 0."""

    def __init__(self, address: tuple[str, int], connect_data: int, source: str = "127.0.0.1"):
        self.address = address
        self.connect_data = connect_data
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind((source, 0))
        self.socket.settimeout(0.2)
        self.peer_header = None
        self.reliable_seq = 0

    def _sent_time(self) -> int:
        return int(time.monotonic() * 1000) & 0xFFFF

    def connect(self, timeout: float = 3.0) -> bool:
        """Completes the handshake; False if the host never answered."""
        connect_id = int.from_bytes(os.urandom(4), "big")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.socket.sendto(connect_datagram(connect_id, self.connect_data), self.address)
            try:
                reply = self.socket.recv(4096)
            except socket.timeout:
                continue
            if len(reply) < 2:
                continue
            peer_id = struct.unpack(">H", reply[:2])[0]
            sent_time, command = 0, reply[2:]
            if peer_id & HEADER_SENT_TIME:
                sent_time, command = struct.unpack(">H", reply[2:4])[0], reply[4:]
            # The reply may carry other commands (an ACK) before VERIFY_CONNECT.
            while len(command) >= 4 and command[0] & 0x0F != VERIFY_CONNECT:
                size = COMMAND_SIZES.get(command[0] & 0x0F)
                if size is None:
                    break
                command = command[size:]
            if len(command) < 44 or command[0] & 0x0F != VERIFY_CONNECT:
                continue
            verify_seq = struct.unpack(">H", command[2:4])[0]
            outgoing_peer_id = struct.unpack(">H", command[4:6])[0]
            outgoing_session = command[7]
            self.peer_header = outgoing_peer_id | (outgoing_session << 12) | HEADER_SENT_TIME
            ack = struct.pack(">BBHHH", ACKNOWLEDGE, 0xFF, verify_seq, verify_seq, sent_time)
            self._send(ack)
            return True
        return False

    def _send(self, commands: bytes) -> None:
        assert self.peer_header is not None
        self.socket.sendto(struct.pack(">HH", self.peer_header, self._sent_time()) + commands, self.address)

    def send_reliable(self, payload: bytes, channel: int = 0) -> None:
        self.reliable_seq += 1
        self._send(struct.pack(">BBHH", SEND_RELIABLE | FLAG_ACK, channel, self.reliable_seq, len(payload)) + payload)

    def close(self) -> None:
        self.socket.close()
