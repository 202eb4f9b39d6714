"""Wire framing: the three formats the runner speaks, in one place.

- Frames: a 4-byte little-endian length, then the payload.  Between T and C (pickled requests one
  way, JSON replies the other) and T's report to the runner.
- Zygote/T socket messages: b"N" or b"F" (fds attached), the same length prefix, a JSON body, in
  one sendmsg so the fds travel with their message.
- Lines: newline-delimited JSON jobs on the runner's stdin, one reply line each on its stdout.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Iterator

MAX_REPLY_BYTES = 32 << 20  # one value returned by the candidate, JSON-encoded


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def frame(payload: bytes) -> bytes:
    return struct.pack("<I", len(payload)) + payload


def _send_frame(fd: int, payload: bytes) -> None:
    _write_all(fd, frame(payload))


class FrameReader:
    """Length-prefixed frames from one fd.  A frame usually comes whole in the first read (one
    syscall, not two); what a read returns beyond it waits for the next call.  One reader per
    pipe end per job, so nothing of one job's pipes carries over to the next."""

    __slots__ = ("fd", "buf")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()

    def recv(self, limit: int) -> bytes | None:
        """One frame; None at EOF before its first byte."""
        fd, buf = self.fd, self.buf
        while len(buf) < 4:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                if not buf:
                    return None
                raise EOFError("truncated frame")
            buf += chunk
        (size,) = struct.unpack_from("<I", buf)
        if size > limit:
            raise ValueError(f"frame of {size} bytes exceeds {limit}")
        end = 4 + size
        while len(buf) < end:
            chunk = os.read(fd, min(end - len(buf), 1 << 20))
            if not chunk:
                raise EOFError("truncated frame")
            buf += chunk
        body = bytes(buf[4:end])
        del buf[:end]
        return body



def _sock_send(sock: socket.socket, msg: dict, fds: list[int] | None = None) -> None:
    """One message (and fds) in one sendmsg; a dead peer is an OSError (EPIPE), never a SIGPIPE."""
    body = json.dumps(msg).encode()
    data = (b"F" if fds else b"N") + struct.pack("<I", len(body)) + body
    sent = socket.send_fds(sock, [data], fds or [], socket.MSG_NOSIGNAL)
    if sent < len(data):
        sock.sendall(data[sent:], socket.MSG_NOSIGNAL)


def _sock_recv(sock: socket.socket) -> tuple[dict | None, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(sock, 5, 8)
    if not data:
        return None, []
    if len(data) < 5:
        data += _sock_exact(sock, 5 - len(data))
    (size,) = struct.unpack("<I", data[1:5])
    return json.loads(_sock_exact(sock, size)), list(fds)


def _sock_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("zygote socket closed")
        buf += chunk
    return bytes(buf)


def read_lines(inp, idle_s: float, waiting: Callable[[], bool], on_idle: Callable[[], None]) -> Iterator[bytes]:  # noqa: ANN001 - a binary file object
    """Job lines from `inp`.  While `waiting()` (a process is held for the next job) and no line
    comes for `idle_s`, `on_idle()` runs (the runner retires its idle T)."""
    try:
        fd = inp.fileno()
    except (AttributeError, OSError, ValueError):
        yield from iter(inp.readline, b"")
        return
    pending: list[bytes] = []
    while True:
        if waiting() and not select.select([fd], [], [], idle_s)[0]:
            try:
                on_idle()
            except Exception:  # noqa: BLE001 - the next job starts a new T either way
                pass
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            if pending:
                yield b"".join(pending)
            return
        start = 0
        while (nl := chunk.find(b"\n", start)) >= 0:
            pending.append(chunk[start : nl + 1])
            yield b"".join(pending)
            pending.clear()
            start = nl + 1
        if start < len(chunk):
            pending.append(chunk[start:])


def collect(t_fd: int, out_r: int, deadline: float, max_out: int, max_report: int) -> tuple[bytes, bytes, bool]:
    """Read T's report frame (b"" if T closed its socket first, or it is over `max_report`); drain
    C's output (keeping max_out bytes).  The flag says the deadline passed first."""
    report, output = bytearray(), bytearray()
    watch = [t_fd, out_r]
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"", bytes(output), True
        ready, _, _ = select.select(watch, [], [], left)
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            if fd == t_fd:
                if not chunk:
                    return b"", bytes(output), False
                report += chunk
                if len(report) >= 4:
                    (size,) = struct.unpack("<I", report[:4])
                    if size > max_report:
                        return b"", bytes(output), False
                    if len(report) >= 4 + size:
                        return bytes(report[4 : 4 + size]), bytes(output), False
            elif not chunk:
                watch.remove(out_r)
            elif len(output) < max_out:
                output += chunk[: max_out - len(output)]
