"""Ports and addresses, one home for each: a free port, a listening socket bound up front, our address.

``free_port`` is for tests, benches and the demo (the OS picks a port nothing listens on);
``check_port_free`` binds a neuron's socket before start-up so a taken port is one sentence;
``external_ip`` is the address peers reach us at, as the system sees it.
"""

from __future__ import annotations

import errno
import socket

from text3d.protocol.errors import ConfigError

__all__ = ["free_port", "check_port_free", "external_ip"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now on ``host`` (the OS picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def external_ip() -> str:
    """The address peers reach us at; only on public networks, and only the system's view of it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent by connect() on UDP
            return probe.getsockname()[0]
        except OSError:
            raise ConfigError("cannot determine this machine's address: set --axon.external_ip") from None


def check_port_free(ip: str, port: int, *, flags: tuple[str, str] = ("--axon.ip", "--axon.port")) -> socket.socket:
    """Bind the listening socket now, so a taken port is one sentence, not a log line after start-up.

    ``flags``: the (address, port) flags the sentence names (the generation server has its own).
    """
    ip_flag, port_flag = flags
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((ip, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"{port_flag} {port} is already in use on {ip} (another miner?): pick a free one with {port_flag}"
            ) from None
        raise ConfigError(f"cannot listen on {ip}:{port} ({exc.strerror}): check {ip_flag} and {port_flag}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock
