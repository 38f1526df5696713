"""Captures a client's traffic to a gateway's front address and replays it from elsewhere, for
the hostile-LAN gateway test. Runs inside a network namespace (`ip netns exec NS python ...`).

  capture --device DEV --to IP --seconds S --out FILE [--ports FIRST-LAST]
      reads every IPv4 packet on DEV (an AF_PACKET socket: root) addressed to IP (at those
      ports) for S seconds
      and writes the UDP datagrams' and TCP segments' payloads, with their protocol and
      destination port, to FILE as JSON
  replay --file FILE --to IP
      sends each captured UDP payload again from a fresh socket to the same address and port,
      and each TCP payload on a new connection (RTSP: one request per connection), printing
      how many went out and what the TCP peers answered
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time

ETH_P_IP = 0x0800


def capture(device: str, to: str, seconds: float, out: str, ports: range) -> int:
    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    sniffer.bind((device, 0))
    sniffer.settimeout(0.2)
    target = socket.inet_aton(to)
    packets = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(packets) < 5000:
        try:
            frame = sniffer.recv(65536)
        except socket.timeout:
            continue
        ip = frame[14:]
        if len(ip) < 20 or ip[16:20] != target:
            continue
        header = (ip[0] & 0x0F) * 4
        protocol = ip[9]
        body = ip[header:]
        if len(body) < 4 or struct.unpack("!H", body[2:4])[0] not in ports:
            continue
        if protocol == 17 and len(body) >= 8:
            port = struct.unpack("!H", body[2:4])[0]
            packets.append({"proto": "udp", "port": port, "payload": body[8:].hex()})
        elif protocol == 6 and len(body) >= 20:
            port = struct.unpack("!H", body[2:4])[0]
            offset = (body[12] >> 4) * 4
            payload = body[offset:]
            if payload:
                packets.append({"proto": "tcp", "port": port, "payload": payload.hex()})
    with open(out, "w") as file:
        json.dump(packets, file)
    print(f"captured {len(packets)}", flush=True)
    return 0


def replay(path: str, to: str) -> int:
    with open(path) as file:
        packets = json.load(file)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = {"udp": 0, "tcp": 0}
    answers = []
    for packet in packets:
        payload = bytes.fromhex(packet["payload"])
        if packet["proto"] == "udp":
            sender.sendto(payload, (to, packet["port"]))
            sent["udp"] += 1
            time.sleep(0.001)
            continue
        try:
            with socket.create_connection((to, packet["port"]), timeout=2) as connection:
                connection.sendall(payload)
                connection.settimeout(2)
                answers.append(connection.recv(64)[:24].hex())
        except OSError as error:
            answers.append(f"error {error}")
        sent["tcp"] += 1
    print(json.dumps({"sent": sent, "tcp_answers": answers}), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=("capture", "replay"))
    parser.add_argument("--device")
    parser.add_argument("--to", required=True)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--out")
    parser.add_argument("--ports", default="1-65535", help="FIRST-LAST destination ports")
    parser.add_argument("--file")
    args = parser.parse_args()
    if args.action == "capture":
        first, last = (int(p) for p in args.ports.split("-"))
        return capture(args.device, args.to, args.seconds, args.out, range(first, last + 1))
    return replay(args.file, args.to)


if __name__ == "__main__":
    sys.exit(main())
