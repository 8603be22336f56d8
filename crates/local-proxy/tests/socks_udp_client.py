#!/usr/bin/env python3
"""An independent SOCKS5 UDP ASSOCIATE client for tests/udp.rs: PySocks.

Usage: socks_udp_client.py PROXY_HOST PROXY_PORT ECHO_HOST ECHO_PORT

Sends datagrams of various sizes (empty to 65000 bytes) through the proxy to
a UDP echo server, one at a time, and checks that every echo comes back
byte-exact and names the echo server as its sender. Prints the number of
datagrams on success. Exit codes: 0 ok, 1 mismatch or error, 3 PySocks is
missing (Debian package python3-socks).
"""

import socket
import sys

try:
    import socks
except ImportError:
    sys.stderr.write(
        "PySocks is not installed: install the Debian package python3-socks\n"
    )
    sys.exit(3)

SIZES = [0, 1, 2, 7, 100, 512, 1400, 1472, 1500, 4096, 9000, 32768, 65000]
ROUNDS = 2


def payload(index, size):
    return bytes((index * 7 + j * 31) % 256 for j in range(size))


def main():
    proxy_host, proxy_port = sys.argv[1], int(sys.argv[2])
    echo = (sys.argv[3], int(sys.argv[4]))
    s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
    s.set_proxy(socks.SOCKS5, proxy_host, proxy_port)
    # A safety net only: each echo is awaited, never slept for.
    s.settimeout(10)
    count = 0
    try:
        for index, size in enumerate(SIZES * ROUNDS):
            data = payload(index, size)
            sent = s.sendto(data, echo)
            if sent != size:
                raise AssertionError(f"datagram {index}: sent {sent} of {size} bytes")
            back, sender = s.recvfrom(65535)
            if sender != echo:
                raise AssertionError(f"datagram {index}: echo from {sender}, not {echo}")
            if back != data:
                raise AssertionError(
                    f"datagram {index}: {size} bytes sent, {len(back)} different bytes back"
                )
            count += 1
    finally:
        # Closes the control connection too, which ends the association.
        s.close()
    print(count)


if __name__ == "__main__":
    try:
        main()
    except Exception as err:  # a clear message for the Rust test's panic
        sys.stderr.write(f"{type(err).__name__}: {err}\n")
        sys.exit(1)
