"""Closing a listening socket without resetting the connections queued on it (Linux).

The kernel completes a client's handshake before the server accepts the connection, and the
client sends its request at once. Closing the listener resets every connection still waiting
in its accept queue: requests sent, never read. So a stopping server first turns new
connections away at the socket, with a filter that drops every packet the listener receives
(a client's SYN goes unanswered; its retry meets the closed port and is refused), then accepts
what is queued and answers it, and only then closes the listener.
"""

from __future__ import annotations

import ctypes
import socket
import struct

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)  # Linux's value
DROP_EVERY_PACKET = struct.pack("HBBI", 0x06, 0, 0, 0)  # classic BPF: `ret #0`
TCP_INFO_UNACKED = 24  # offset of tcpi_unacked: a listener's accept queue length


def turn_away_new_connections(listener: socket.socket) -> bool:
    """Drop every packet that reaches `listener` from now on; False where that is impossible."""
    program = ctypes.create_string_buffer(DROP_EVERY_PACKET)
    fprog = struct.pack("HP", 1, ctypes.addressof(program))  # struct sock_fprog
    try:
        with socket.fromfd(listener.fileno(), listener.family, listener.type) as own:
            own.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True


def queued_connections(listener: socket.socket) -> int:
    """Connections the kernel has completed that the server has not accepted yet."""
    try:
        with socket.fromfd(listener.fileno(), listener.family, listener.type) as own:
            info = own.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return 0
    return int(struct.unpack_from("I", info, TCP_INFO_UNACKED)[0])
