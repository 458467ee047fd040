"""Raw HTTP on 127.0.0.1 for the differential and soak tests: a scripted upstream that writes
exactly the bytes a case asks for (framing, chunk splits, trailers, pacing), an HTTP/1.1
client that reports framing and trailers instead of hiding them, and an HTTP/2 client
through `curl --http2-prior-knowledge` (the only HTTP/2 client on these machines).

Python 3.11 stdlib only. Everything binds or connects to 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Callable

LOOPBACK = "127.0.0.1"
NO_BODY_STATUSES = frozenset({204, 304}) | set(range(100, 200))


def module_id(path) -> str:
    """sha256 prefix, size and mtime of a file (the wasm module), to name what a run tested."""
    import hashlib
    try:
        with open(path, "rb") as f:
            data = f.read()
        mtime = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(os.stat(path).st_mtime))
        return f"{hashlib.sha256(data).hexdigest()[:12]} ({len(data)} B, built {mtime} UTC)"
    except OSError as exc:
        return f"unreadable: {exc}"


# ---------------------------------------------------------------------------------------------
# What the upstream writes


@dataclass
class Answer:
    """One scripted upstream answer.

    framing: "cl" (Content-Length), "chunked", "close" (no length, connection closed after the
    body) or "none" (204/304: no framing header, no body).
    pieces: how the body bytes are split into writes (CL/close) or chunks (chunked); empty
    means one piece. pause_s: sleep between pieces (streams, SSE), 0 for back-to-back writes.
    """

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    framing: str = "cl"
    pieces: list[int] = field(default_factory=list)
    trailers: list[tuple[str, str]] = field(default_factory=list)
    pause_s: float = 0.0

    def split(self) -> list[bytes]:
        if not self.pieces:
            return [self.body] if self.body else []
        out, at = [], 0
        for size in self.pieces:
            if at >= len(self.body):
                break
            out.append(self.body[at:at + size])
            at += size
        if at < len(self.body):
            out.append(self.body[at:])
        return out


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Whatever"


def write_answer(sock: socket.socket, answer: Answer, head_only: bool) -> bool:
    """Writes `answer`; returns False when the connection must close afterwards."""
    lines = [f"HTTP/1.1 {answer.status} {_reason(answer.status)}"]
    lines += [f"{k}: {v}" for k, v in answer.headers]
    framing = "none" if answer.status in NO_BODY_STATUSES else answer.framing
    if framing == "cl":
        lines.append(f"Content-Length: {len(answer.body)}")
    elif framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
    elif framing == "close":
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if head_only or framing == "none":
        sock.sendall(head)
        return framing != "close"
    pieces = answer.split()
    if framing == "chunked":
        frames = [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p]
        tail = b"0\r\n" + b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in answer.trailers)
        tail += b"\r\n"
    else:
        frames, tail = pieces, b""
    if answer.pause_s <= 0:
        sock.sendall(head + b"".join(frames) + tail)
    else:
        sock.sendall(head)
        for frame in frames:
            time.sleep(answer.pause_s)
            sock.sendall(frame)
        time.sleep(answer.pause_s)
        if tail:
            sock.sendall(tail)
    return framing != "close"


# ---------------------------------------------------------------------------------------------
# The upstream


class RawUpstream:
    """Threaded HTTP/1.1 server on 127.0.0.1 that answers with `answer_for(method, path,
    headers, body)` (an Answer). Keep-alive; request bodies read by Content-Length or chunked."""

    def __init__(self, answer_for: Callable[[str, str, dict, bytes], Answer]):
        self.answer_for = answer_for
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((LOOPBACK, 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.errors: list[str] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._stopping = False
        self._conns: set[socket.socket] = set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept, name="raw-upstream", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = conn.makefile("rb")
        try:
            while True:
                line = reader.readline(65536)
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    continue
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    h = reader.readline(65536)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = read_body(reader, headers)
                with self._lock:
                    self.requests += 1
                answer = self.answer_for(method, target, headers, body)
                if not write_answer(conn, answer, head_only=(method == "HEAD")):
                    return
        except (OSError, ValueError) as exc:
            if not self._stopping:
                with self._lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                reader.close()
                conn.close()
            except OSError:
                pass


def read_body(reader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            size = int(reader.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while reader.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += reader.read(size)
            reader.readline(16)
    length = int(headers.get("content-length") or 0)
    return reader.read(length) if length else b""


# ---------------------------------------------------------------------------------------------
# What a client receives


@dataclass
class Received:
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)  # names lower-cased, in order
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)
    framing: str = ""  # cl, chunked, close, none, h2
    error: str = ""  # transport failure: reset, truncated body, timeout, curl error

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


class _Buf:
    def __init__(self, sock: socket.socket):
        self.sock, self.data = sock, bytearray()

    def _more(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.data += chunk
        return True

    def line(self) -> bytes:
        while True:
            i = self.data.find(b"\r\n")
            if i >= 0:
                out = bytes(self.data[:i])
                del self.data[:i + 2]
                return out
            if not self._more():
                raise EOFError("connection closed inside a line")

    def exactly(self, n: int) -> bytes:
        while len(self.data) < n:
            if not self._more():
                raise EOFError(f"connection closed after {len(self.data)} of {n} body bytes")
        out = bytes(self.data[:n])
        del self.data[:n]
        return out

    def rest(self) -> bytes:
        while self._more():
            pass
        out = bytes(self.data)
        self.data.clear()
        return out


def _request_bytes(method: str, path: str, headers: list[tuple[str, str]], body: bytes,
                   chunked_request: bool) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers]
    if chunked_request:
        lines.append("Transfer-Encoding: chunked")
        payload = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    else:
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def _read_response(buf: _Buf, method: str, out: Received) -> None:
    """Reads one response from `buf` into `out` by its framing (raises on a broken one)."""
    while True:
        status_line = buf.line().decode("latin-1")
        out.status = int(status_line.split(" ", 2)[1])
        out.headers = []
        while True:
            h = buf.line()
            if not h:
                break
            k, _, v = h.decode("latin-1").partition(":")
            out.headers.append((k.strip().lower(), v.strip()))
        if out.status >= 200 or out.status == 101:
            break  # 1xx interim answers are skipped
    te = (out.header("transfer-encoding") or "").lower()
    if method == "HEAD" or out.status in NO_BODY_STATUSES:
        out.framing = "none"
    elif "chunked" in te:
        out.framing = "chunked"
        body_parts = []
        while True:
            size = int(buf.line().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                break
            body_parts.append(buf.exactly(size))
            if buf.line() != b"":
                raise ValueError("chunk not followed by CRLF")
        out.body = b"".join(body_parts)
        while True:
            t = buf.line()
            if not t:
                break
            k, _, v = t.decode("latin-1").partition(":")
            out.trailers.append((k.strip().lower(), v.strip()))
    elif out.header("content-length") is not None:
        out.framing = "cl"
        out.body = buf.exactly(int(out.header("content-length")))
    else:
        out.framing = "close"
        out.body = buf.rest()


def h1_request(port: int, method: str, path: str, headers: list[tuple[str, str]], body: bytes,
               timeout: float = 15.0, chunked_request: bool = False) -> Received:
    """One request on a fresh connection to 127.0.0.1:port; the response read by its framing."""
    raw = _request_bytes(method, path, headers, body, chunked_request)
    out = Received()
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            sock.sendall(raw)
            _read_response(_Buf(sock), method, out)
    except (OSError, EOFError, ValueError, IndexError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    return out


class H1Conn:
    """A keep-alive HTTP/1.1 connection to 127.0.0.1:port, reopened only after the server ends
    it properly (close-delimited body, `connection: close`). No retries: any transport failure
    is reported in Received.error and the connection is dropped."""

    def __init__(self, port: int, timeout: float = 15.0):
        self.port, self.timeout = port, timeout
        self.sock: socket.socket | None = None
        self.buf: _Buf | None = None
        self.opened = 0

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = self.buf = None

    def request(self, method: str, path: str, headers: list[tuple[str, str]],
                body: bytes) -> Received:
        raw = _request_bytes(method, path, headers, body, False)
        out = Received()
        try:
            if self.sock is None:
                self.sock = socket.create_connection((LOOPBACK, self.port), timeout=self.timeout)
                self.buf = _Buf(self.sock)
                self.opened += 1
            self.sock.sendall(raw)
            _read_response(self.buf, method, out)
            if out.framing == "close" or (out.header("connection") or "").lower() == "close":
                self.close()
        except (OSError, EOFError, ValueError, IndexError) as exc:
            self.close()
            out.error = f"{type(exc).__name__}: {exc}"
        return out


# ---------------------------------------------------------------------------------------------
# HTTP/2 through curl


def curl_h2_available() -> str:
    """'' when `curl --http2-prior-knowledge` can be used, else why not."""
    curl = shutil.which("curl")
    if not curl:
        return "curl is not installed"
    try:
        out = subprocess.run([curl, "-V"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"curl -V failed: {exc}"
    if "HTTP2" not in out.split("Features:", 1)[-1]:
        return "curl was built without HTTP/2 (no HTTP2 in `curl -V` Features)"
    return ""


def h2_request(port: int, method: str, path: str, headers: list[tuple[str, str]], body: bytes,
               work: str, timeout: float = 15.0) -> Received:
    """One HTTP/2 (prior knowledge, cleartext) request to 127.0.0.1:port with curl.

    curl writes the response head, and after the body any trailers, to the -D file."""
    fd, hdr_path = tempfile.mkstemp(dir=work, suffix=".h")
    os.close(fd)
    fd, body_path = tempfile.mkstemp(dir=work, suffix=".b")
    os.close(fd)
    cmd = ["curl", "--http2-prior-knowledge", "-sS", "--max-time", str(int(timeout)),
           "--noproxy", "*", "-D", hdr_path, "-o", body_path]
    if method == "HEAD":
        cmd.append("--head")
    else:
        cmd += ["-X", method]
    for k, v in headers:
        cmd += ["-H", f"{k}: {v}"]
    cmd += ["-H", "Expect:"]  # never send Expect: 100-continue
    req_path = None
    if body or method in ("POST", "PUT", "PATCH"):
        fd, req_path = tempfile.mkstemp(dir=work, suffix=".r")
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        cmd += ["--data-binary", f"@{req_path}"]
    cmd.append(f"http://{LOOPBACK}:{port}{path}")
    out = Received(framing="h2")
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout + 5,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        if proc.returncode != 0:
            out.error = f"curl exit {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}"
        with open(hdr_path, "rb") as f:
            raw = f.read().decode("latin-1")
        with open(body_path, "rb") as f:
            # With --head curl writes the head to the output file too: a HEAD answer has no body.
            out.body = b"" if method == "HEAD" else f.read()
        blocks = [b for b in raw.replace("\r\n", "\n").split("\n\n")]
        # Final answer head: the last block starting with "HTTP/" (1xx heads come first).
        heads = [i for i, b in enumerate(blocks) if b.startswith("HTTP/")]
        if not heads:
            out.error = out.error or "no response head from curl"
            return out
        head_i = heads[-1]
        first, *rest = blocks[head_i].split("\n")
        out.status = int(first.split(" ")[1])
        for line in rest:
            if line:
                k, _, v = line.partition(":")
                out.headers.append((k.strip().lower(), v.strip()))
        for b in blocks[head_i + 1:]:
            for line in b.split("\n"):
                if line:
                    k, _, v = line.partition(":")
                    out.trailers.append((k.strip().lower(), v.strip()))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        out.error = out.error or f"{type(exc).__name__}: {exc}"
    finally:
        for p in (hdr_path, body_path, req_path):
            if p:
                try:
                    os.unlink(p)
                except OSError:
                    pass
    return out
