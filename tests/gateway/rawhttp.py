"""HTTP/1.1 over a plain socket, for requests no client library sends: a body announced and never sent,
a chunked body that never ends."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def connect(url: str, timeout: float = 5.0) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=timeout)


def send_head(sock: socket.socket, path: str, headers: dict[str, str]) -> None:
    """A POST's request line and headers; the body (if any) is the caller's to send, or not."""
    lines = [f"POST {path} HTTP/1.1", "Host: gateway", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    sock.sendall("\r\n".join(lines).encode("latin-1"))


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def read_response(sock: socket.socket) -> RawResponse:
    """One response with a Content-Length (the gateway's own answers always have one)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise AssertionError(f"connection closed before a response: {buf!r}")
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    length = int(headers["content-length"])
    while len(body) < length:
        data = sock.recv(65536)
        if not data:
            raise AssertionError("connection closed mid-response")
        body += data
    return RawResponse(int(status_line.split()[1]), headers, body[:length])


def closed_by_peer(sock: socket.socket) -> bool:
    """True once the server has closed the connection (EOF or reset), waiting up to the socket timeout."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True
