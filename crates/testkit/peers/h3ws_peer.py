"""An independent WebSocket-over-HTTP/3 peer (RFC 9220) for tests.

Built on aioquic (QUIC, HTTP/3) and wsproto (WebSocket framing), sharing no
code with this project, so our HTTP/3 client and server can be checked against
a peer that does not share our assumptions. Three modes:

  echo-backend --listen HOST:PORT
      A plain HTTP/1.1 WebSocket server (RFC 6455) on TCP that echoes every
      message; the backend behind `server`.
  client --url https://HOST:PORT/PATH?QUERY [--ca PEM | --insecure] ...
      An HTTP/3 client opening a WebSocket with extended CONNECT, driven by
      JSON commands on stdin (or the built-in benchmark).
  server --listen HOST:PORT --cert PEM --key PEM --backend ws[s]://HOST:PORT ...
      An HTTP/3 server accepting RFC 9220 WebSockets and relaying each one,
      message by message, to an HTTP/1.1 WebSocket backend.

Run it with the Python that `scripts/python-peers` prints (a venv with the
pinned aioquic and wsproto of requirements.txt beside this file):

  "$(scripts/python-peers)" crates/testkit/peers/h3ws_peer.py MODE ...

Machine-readable JSON lines go to stdout (one object per line, flushed);
human logs go to stderr. Run `h3ws_peer.py MODE --help` for the options, and
see each mode's section below for the exact JSON.

Client exit codes: 0 normal end (whatever the status), 1 benchmark failure,
2 bad command line, 3 the server did not advertise
SETTINGS_ENABLE_CONNECT_PROTOCOL, 4 timeout (handshake, SETTINGS, response,
benchmark), 5 the connection or the stream ended before the response.
Servers run until SIGTERM or SIGINT and then exit 0.

The RFCs in short:
- RFC 8441 §3/§4 (HTTP/2) and RFC 9220 §3 (HTTP/3): a server that sends
  SETTINGS_ENABLE_CONNECT_PROTOCOL (0x08) = 1 accepts "extended CONNECT":
  a CONNECT request with a `:protocol` pseudo-header and, unlike a classic
  CONNECT, with `:scheme` and `:path`.
- RFC 8441 §5: `:protocol websocket` replaces the HTTP/1.1 Upgrade; there is no
  Connection/Upgrade header and no Sec-WebSocket-Key/Accept exchange, while
  Sec-WebSocket-Version, -Protocol, -Extensions and Origin keep their RFC 6455
  meaning. A 200 response accepts; from then on the stream takes the place of
  RFC 6455's TCP connection: the WebSocket is OPEN and the RFC 6455 framing
  applies unchanged, client-to-server masking included.
- RFC 9220 §3: an orderly end of the stream (FIN) stands for a TCP close, and
  a stream error H3_REQUEST_CANCELLED for a TCP reset.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import signal
import ssl
import stat
import sys
import time
from urllib.parse import urlsplit

import h11  # wsproto's own HTTP/1.1 parser (a dependency of wsproto)
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.h3.connection import H3_ALPN, ErrorCode, H3Connection, Setting
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, StreamReset
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

READ_CHUNK = 256 * 1024
# QUIC receive windows: larger than aioquic's 1 MiB defaults so that a 4 MiB
# message or the benchmark is not throttled by window updates on loopback.
QUIC_MAX_DATA = 16 * 1024 * 1024
QUIC_MAX_STREAM_DATA = 8 * 1024 * 1024
BACKEND_DIAL_TIMEOUT = 5.0
# A text event carries the whole text up to this many characters; a longer one
# is cut to its first TEXT_PREVIEW characters, with its length and digest.
TEXT_FULL_MAX = 4096
TEXT_PREVIEW = 256
# A binary event carries the payload itself (base64) up to this many bytes.
BINARY_INLINE_MAX = 256
BENCH_WINDOW = 64


# ---------------------------------------------------------------------------
# Output and small helpers


def emit(obj):
    """One JSON line on stdout, flushed at once (the machine-readable channel)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(message):
    print(f"h3ws_peer: {message}", file=sys.stderr, flush=True)


def b64(data):
    return base64.b64encode(bytes(data)).decode("ascii")


def close_code(code):
    """A close code for JSON: null when the Close frame carried none (1005,
    RFC 6455 §7.1.5)."""
    return None if code == CloseReason.NO_STATUS_RCVD else int(code)


def split_host_port(value):
    """'127.0.0.1:0' or '[::1]:0' -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def join_host_port(sockname):
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def headers_dict(headers, skip_pseudo=False):
    """HTTP fields as {lowercased name: value}; repeated fields are joined
    with ", " (RFC 9110 §5.3)."""
    out = {}
    for name, value in headers:
        name = name.decode("latin-1").lower()
        if skip_pseudo and name.startswith(":"):
            continue
        value = value.decode("utf-8", "replace")
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def text_event(text):
    event = {"event": "text"}
    if len(text) <= TEXT_FULL_MAX:
        event["data"] = text
    else:
        event["data"] = text[:TEXT_PREVIEW]
        event["truncated"] = True
        event["sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if len(text) > TEXT_PREVIEW:
        event["len"] = len(text)
    return event


def binary_event(data):
    event = {"event": "binary", "len": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if len(data) <= BINARY_INLINE_MAX:
        event["b64"] = b64(data)
    return event


class MessageAssembler:
    """Joins the pieces of one WebSocket message.

    wsproto hands out a message's payload as it arrives, across frames
    (RFC 6455 §5.4 fragmentation) and within a frame; `message_finished`
    marks the last piece. `add` returns the whole message (str for text,
    bytes for binary) once it is complete, else None.
    """

    def __init__(self):
        self._parts = []

    def add(self, event):
        self._parts.append(event.data)
        if not event.message_finished:
            return None
        parts, self._parts = self._parts, []
        if isinstance(event, TextMessage):
            return "".join(parts)
        return b"".join(parts)


def message_event(message):
    """The wsproto event that sends `message` as one whole message of its type."""
    if isinstance(message, str):
        return TextMessage(data=message)
    return BytesMessage(data=message)


async def wait_for_stop_signal():
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# ---------------------------------------------------------------------------
# echo-backend: HTTP/1.1 WebSocket echo server (asyncio TCP + wsproto)
#
# JSON on stdout:
#   {"listening": "HOST:PORT"}                       once bound
#   {"event": "request", "path": "/ws?x=1", "headers": {name: value}}
#   {"event": "ping", "b64": "..."}                  (answered with a pong)
#   {"event": "closed", "code": N|null, "reason": "...", "initiator": "client"|"backend"|null}
#       when a close handshake completes: the client's Close code and reason
#       ("initiator" tells who sent the first Close), or code 1006 with
#       initiator null when the connection was lost without one.
#   {"event": "protocol_error", "code": N, "reason": "..."}
#       when the client's frames are invalid (answered with that Close code)
#
# Every whole text or binary message is echoed as one message of the same
# type, except a text message "close:CODE:REASON", which makes the backend
# close with that code and reason instead.


async def accept_upgrade(reader, writer):
    """Reads an HTTP/1.1 request and accepts it as a WebSocket upgrade
    (RFC 6455 §4.2). Returns the WSConnection, or None after rejecting it."""
    http = h11.Connection(h11.SERVER)
    while True:
        try:
            request = http.next_event()
        except h11.RemoteProtocolError as exc:
            log(f"echo-backend: bad HTTP request: {exc}")
            return None
        if request is not h11.NEED_DATA:
            break
        data = await reader.read(READ_CHUNK)
        if not data:
            return None
        http.receive_data(data)
    if not isinstance(request, h11.Request):
        return None
    target = request.target.decode("ascii", "replace")
    emit({"event": "request", "path": target, "headers": headers_dict(request.headers)})

    ws = WSConnection(ConnectionType.SERVER)
    try:
        # The request is already parsed; wsproto validates it as an upgrade.
        ws.initiate_upgrade_connection(request.headers, request.target)
    except RemoteProtocolError as exc:
        log(f"echo-backend: not a WebSocket upgrade: {exc}")
        reject = exc.event_hint or RejectConnection(status_code=400)
        writer.write(ws.send(reject))
        await writer.drain()
        return None
    for event in ws.events():
        if isinstance(event, Request):
            writer.write(ws.send(AcceptConnection()))
    # Bytes that followed the request head belong to the WebSocket.
    trailing, _ = http.trailing_data
    if trailing:
        ws.receive_data(bytes(trailing))
    return ws


async def echo_connection(reader, writer):
    try:
        ws = await accept_upgrade(reader, writer)
        if ws is None:
            return
        messages = MessageAssembler()
        closing_initiator = None
        while True:
            for event in ws.events():
                if isinstance(event, (TextMessage, BytesMessage)):
                    message = messages.add(event)
                    if message is None or ws.state is not ConnectionState.OPEN:
                        # Nothing is sent after our own Close (RFC 6455 §5.5.1).
                        continue
                    if isinstance(message, str) and message.startswith("close:"):
                        _, code, reason = message.split(":", 2)
                        closing_initiator = "backend"
                        writer.write(ws.send(CloseConnection(code=int(code), reason=reason)))
                    else:
                        writer.write(ws.send(message_event(message)))
                elif isinstance(event, Ping):
                    emit({"event": "ping", "b64": b64(event.payload)})
                    if ws.state is ConnectionState.OPEN:
                        writer.write(ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if ws.state is ConnectionState.OPEN:
                        # wsproto rejected the peer's frames: fail the
                        # connection with its code (RFC 6455 §7.1.7).
                        emit({"event": "protocol_error", "code": int(event.code), "reason": event.reason})
                        closing_initiator = "backend"
                        writer.write(ws.send(CloseConnection(code=event.code, reason=event.reason)))
                        continue
                    if ws.state is ConnectionState.REMOTE_CLOSING:
                        # Answer with the same code and reason (RFC 6455 §5.5.1).
                        closing_initiator = "client"
                        writer.write(ws.send(event.response()))
                    # wsproto's 1006: the connection was lost, no Close came.
                    lost = event.code == CloseReason.ABNORMAL_CLOSURE
                    emit({
                        "event": "closed",
                        "code": close_code(event.code),
                        "reason": event.reason or "",
                        "initiator": None if lost else closing_initiator,
                    })
            await writer.drain()
            if ws.state is ConnectionState.CLOSED:
                # The server closes the TCP connection first (RFC 6455 §7.1.1).
                return
            data = await reader.read(READ_CHUNK)
            # None tells wsproto the transport is gone: it reports code 1006.
            ws.receive_data(data or None)
    except OSError as exc:
        log(f"echo-backend: connection ended: {exc!r}")
    finally:
        writer.close()


async def run_echo_backend(args):
    host, port = args.listen
    server = await asyncio.start_server(echo_connection, host, port)
    emit({"listening": join_host_port(server.sockets[0].getsockname())})
    await wait_for_stop_signal()
    server.close()
    return 0


# ---------------------------------------------------------------------------
# server: RFC 9220 server relaying to an HTTP/1.1 WebSocket backend
#
# JSON on stdout:
#   {"listening": "HOST:PORT"}                       once the UDP socket is bound
#   {"event": "request", "method": "CONNECT", "protocol": "websocket"|null,
#    "path": "/ws?x=1", "status": N, "headers": {all fields, pseudo-headers too}}
#       for every request, with the status it is answered with
#   {"event": "session", "path": "/ws?x=1", "backend_status": "ok"|"failed"|"cancelled"}
#       for every accepted extended CONNECT, once the backend dial ends
#       ("cancelled": the client reset or ended the stream, or the connection
#       closed, before the dial ended)


class BackendRejected(Exception):
    pass


async def dial_backend(backend, backend_ca, path):
    """Opens an RFC 6455 WebSocket to the backend, `path` (with its query)
    appended to the backend URL's path. Returns (reader, writer, WSConnection)."""
    tls = None
    if backend.scheme == "wss":
        tls = ssl.create_default_context(cafile=backend_ca)
    port = backend.port or (443 if tls else 80)
    reader, writer = await asyncio.open_connection(
        backend.hostname, port, ssl=tls, server_hostname=backend.hostname if tls else None
    )
    try:
        ws = WSConnection(ConnectionType.CLIENT)
        target = backend.path.rstrip("/") + path
        writer.write(ws.send(Request(host=backend.netloc, target=target)))
        while True:
            data = await reader.read(READ_CHUNK)
            if not data:
                raise BackendRejected("closed during the handshake")
            ws.receive_data(data)
            # Stop at the answer: events behind it stay queued in `ws`.
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    return reader, writer, ws
                if isinstance(event, RejectConnection):
                    raise BackendRejected(f"HTTP {event.status_code}")
    except BaseException:
        writer.close()
        raise


class H3Protocol(QuicConnectionProtocol):
    """A QUIC connection speaking HTTP/3, client or server.

    aioquic's H3Connection always puts SETTINGS_ENABLE_CONNECT_PROTOCOL=1 in
    its SETTINGS, on both sides (H3Connection._get_local_settings): a server
    needs nothing more to offer extended CONNECT; from a client the setting
    is meaningless and ignored.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self._flush_scheduled = False

    def flush(self):
        """Sends what was queued, once per turn of the event loop: many
        messages written in one go share packets."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self):
        self._flush_scheduled = False
        self.transmit()


class RelayEnd:
    """One of the two WebSockets of a relay session, as two wsproto
    Connections: `rx` parses what the peer sends, `tx` frames what we send.

    A single wsproto Connection refuses to send anything once it has received
    a Close (REMOTE_CLOSING). A relay must still pass on the messages that
    were in flight from the other side when the Close came, and RFC 6455
    §5.5.1 allows that: an endpoint answers a Close "as soon as practical"
    and may first send what it has. Two state machines keep the two halves of
    the closing handshake apart; the WebSocket is closed once a Close went
    each way (RFC 6455 §7.1.4).
    """

    def __init__(self, connection_type, rx=None):
        self.rx = rx if rx is not None else Connection(connection_type)
        self.tx = Connection(connection_type)
        self.messages = MessageAssembler()

    @property
    def close_sent(self):
        return self.tx.state is not ConnectionState.OPEN

    @property
    def closed(self):
        return self.close_sent and self.rx.state is not ConnectionState.OPEN

    def receive(self, data):
        """Feeds the peer's bytes (None: its transport ended); returns events."""
        if self.rx.state is not ConnectionState.CLOSED:
            self.rx.receive_data(data)
        return list(self.rx.events())


class RelaySession:
    """One RFC 9220 WebSocket on a request stream, relayed to one backend
    WebSocket, whole message by whole message.

    Every Close is passed on with its code and reason, and the side that
    closed first gets the other side's answer: each close handshake is end to
    end. Pings and pongs are passed on too (the far end answers). When the
    client's WebSocket is closed the stream ends with FIN; a backend lost
    without a close handshake resets the stream with H3_REQUEST_CANCELLED
    (RFC 9220 §3: the HTTP/3 forms of a TCP close and a TCP reset).
    """

    def __init__(self, protocol, stream_id, path):
        self.protocol = protocol
        self.stream_id = stream_id
        self.path = path
        # The server end of the client's WebSocket: it expects masked frames
        # and sends unmasked ones (RFC 6455 §5.1, kept by RFC 8441 §5).
        self.client = RelayEnd(ConnectionType.SERVER)
        self.backend = None  # a RelayEnd once dialled
        self.backend_writer = None
        # Events for the backend that arrive while it is being dialled.
        self.pending = []
        self.dial_failed = False
        self.client_ended = False  # the client's sending side is ended (FIN or reset)
        self.stream_done = False  # our sending side is ended (FIN or reset)
        self.task = asyncio.ensure_future(self.run())
        self.task.add_done_callback(self.on_task_done)

    # The client side (called from the QUIC protocol)

    def on_client_data(self, data, ended):
        if data:
            for event in self.client.receive(data):
                self.on_client_event(event)
        if ended:
            self.client_ended = True
            # A FIN after the client's Close only ends its half of the
            # stream: the backend's answer still goes back. Before any Close
            # it is a TCP close without a close handshake.
            if self.client.rx.state is ConnectionState.OPEN:
                log(f"stream {self.stream_id}: client ended the stream without a close handshake")
                self.task.cancel()
                self.finish_stream()
            self.forget_if_done()

    def on_client_event(self, event):
        if isinstance(event, (TextMessage, BytesMessage)):
            message = self.client.messages.add(event)
            if message is not None:
                self.to_backend(message_event(message))
        elif isinstance(event, (Ping, Pong)):
            self.to_backend(event)
        elif isinstance(event, CloseConnection):
            close = CloseConnection(code=event.code, reason=event.reason)
            if self.client.rx.state is ConnectionState.OPEN:
                # wsproto rejected the client's frames (RFC 6455 §7.1.7).
                log(f"stream {self.stream_id}: client protocol error: {event.code} {event.reason}")
                self.to_client(close)
            self.to_backend(close)
            self.finish_stream_if_closed()

    def on_client_reset(self, error_code):
        log(f"stream {self.stream_id}: client reset the stream (error 0x{error_code:x})")
        self.client_ended = True
        self.task.cancel()
        self.reset_stream()

    def abort(self):
        self.task.cancel()
        self.stream_done = True

    # The backend side

    def on_task_done(self, task):
        if task.cancelled() and self.backend is None:
            # The client went away before the dial ended (the task may not
            # even have started).
            emit({"event": "session", "path": self.path, "backend_status": "cancelled"})

    async def run(self):
        options = self.protocol.options
        try:
            reader, writer, ws = await asyncio.wait_for(
                dial_backend(options.backend, options.backend_ca, self.path), BACKEND_DIAL_TIMEOUT
            )
        except (OSError, asyncio.TimeoutError, BackendRejected, RemoteProtocolError) as exc:
            log(f"stream {self.stream_id}: backend dial failed: {exc!r}")
            emit({"event": "session", "path": self.path, "backend_status": "failed"})
            self.dial_failed = True
            self.pending.clear()
            # 1011: the server met a condition that kept it from fulfilling
            # the request (RFC 6455 §7.4.1).
            self.to_client(CloseConnection(code=1011, reason="backend unavailable"))
            return
        emit({"event": "session", "path": self.path, "backend_status": "ok"})
        # After the handshake `ws` only parses; a fresh client Connection
        # frames (and masks) what goes to the backend.
        self.backend = RelayEnd(ConnectionType.CLIENT, rx=ws)
        self.backend_writer = writer
        try:
            for event in self.pending:
                self.to_backend(event)
            self.pending.clear()
            events = list(ws.events())  # what came with the handshake's answer
            while True:
                for event in events:
                    self.on_backend_event(event)
                await writer.drain()
                if self.backend.closed or reader.at_eof():
                    return
                data = await reader.read(READ_CHUNK)
                events = self.backend.receive(data or None)
        except OSError as exc:
            log(f"stream {self.stream_id}: backend connection lost: {exc!r}")
            self.reset_stream()
        finally:
            writer.close()

    def on_backend_event(self, event):
        if isinstance(event, (TextMessage, BytesMessage)):
            message = self.backend.messages.add(event)
            if message is not None:
                self.to_client(message_event(message))
        elif isinstance(event, (Ping, Pong)):
            self.to_client(event)
        elif isinstance(event, CloseConnection):
            if event.code == CloseReason.ABNORMAL_CLOSURE:
                # wsproto's 1006: the TCP connection ended. Without a Close
                # from the backend first that is an "RST exception" for the
                # client; after one, the client's answer is simply dropped.
                if not self.client.close_sent:
                    log(f"stream {self.stream_id}: backend closed without a close handshake")
                    self.reset_stream()
                return
            close = CloseConnection(code=event.code, reason=event.reason)
            if self.backend.rx.state is ConnectionState.OPEN:
                log(f"stream {self.stream_id}: backend protocol error: {event.code} {event.reason}")
                self.to_backend(close)
            self.to_client(close)

    # Sending

    def to_backend(self, event):
        if self.dial_failed:
            return
        if self.backend is None:
            self.pending.append(event)
            return
        if self.backend.close_sent:
            log(f"stream {self.stream_id}: dropped for the backend after its Close: {event}")
            return
        self.backend_writer.write(self.backend.tx.send(event))

    def to_client(self, event):
        if self.stream_done:
            return
        if self.client.close_sent:
            log(f"stream {self.stream_id}: dropped for the client after its Close: {event}")
            return
        data = self.client.tx.send(event)
        self.protocol.h3.send_data(self.stream_id, data, end_stream=False)
        self.finish_stream_if_closed()
        self.protocol.flush()

    def finish_stream_if_closed(self):
        # A Close went each way: the stream ends with FIN, the HTTP/3 form
        # of the TCP close (RFC 9220 §3).
        if self.client.closed:
            self.finish_stream()

    def finish_stream(self):
        if not self.stream_done:
            self.stream_done = True
            self.protocol.h3.send_data(self.stream_id, b"", end_stream=True)
            self.protocol.flush()
            self.forget_if_done()

    def reset_stream(self):
        if not self.stream_done:
            self.stream_done = True
            self.protocol._quic.reset_stream(self.stream_id, ErrorCode.H3_REQUEST_CANCELLED)
            self.protocol.flush()
            self.forget_if_done()

    def forget_if_done(self):
        # Both halves of the stream are over: nothing more reaches this
        # session (a backend still closing ends on its own).
        if self.client_ended and self.stream_done:
            self.protocol.sessions.pop(self.stream_id, None)


class H3ServerProtocol(H3Protocol):
    """One QUIC connection of the server; any number of CONNECT streams."""

    def __init__(self, *args, options, **kwargs):
        super().__init__(*args, **kwargs)
        self.options = options
        self.sessions = {}

    def quic_event_received(self, event):
        if isinstance(event, StreamReset):
            session = self.sessions.get(event.stream_id)
            if session is not None:
                session.on_client_reset(event.error_code)
        elif isinstance(event, ConnectionTerminated):
            for session in self.sessions.values():
                session.abort()
            self.sessions.clear()
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                if h3_event.stream_id not in self.sessions:
                    self.on_request(h3_event)
                # else: trailers on a WebSocket stream; nothing to do.
            elif isinstance(h3_event, DataReceived):
                session = self.sessions.get(h3_event.stream_id)
                if session is not None:
                    session.on_client_data(h3_event.data, h3_event.stream_ended)

    def on_request(self, event):
        fields = headers_dict(event.headers)
        method = fields.get(":method")
        protocol = fields.get(":protocol")
        path = fields.get(":path", "")
        if method != "CONNECT":
            status = 405
        elif protocol != "websocket":
            # RFC 9220 §3 suggests 501 for an unknown :protocol; this peer
            # answers 400 for any CONNECT that is not a WebSocket.
            status = 400
        elif not self.options.path_regex.search(path.split("?", 1)[0]):
            status = 404
        else:
            status = 200
        emit({
            "event": "request",
            "method": method,
            "protocol": protocol,
            "path": path,
            "status": status,
            "headers": fields,
        })
        response = [(b":status", str(status).encode())]
        if status == 405:
            response.append((b"allow", b"CONNECT"))
        if status != 200:
            self.h3.send_headers(event.stream_id, response, end_stream=True)
            return
        # A 200 accepts the WebSocket (RFC 8441 §5); the stream stays open
        # both ways and carries WebSocket frames in DATA frames.
        self.h3.send_headers(event.stream_id, response)
        session = RelaySession(self, event.stream_id, path)
        self.sessions[event.stream_id] = session
        if event.stream_ended:
            session.on_client_data(b"", True)


async def run_server(args):
    configuration = QuicConfiguration(
        is_client=False,
        alpn_protocols=H3_ALPN,
        max_data=QUIC_MAX_DATA,
        max_stream_data=QUIC_MAX_STREAM_DATA,
    )
    configuration.load_cert_chain(args.cert, args.key)

    def create_protocol(*protocol_args, **protocol_kwargs):
        return H3ServerProtocol(*protocol_args, options=args, **protocol_kwargs)

    host, port = args.listen
    loop = asyncio.get_running_loop()
    # aioquic's serve() hides its transport; building the endpoint here gives
    # the bound address (port 0 -> the real port).
    transport, server = await loop.create_datagram_endpoint(
        lambda: QuicServer(configuration=configuration, create_protocol=create_protocol),
        local_addr=(host, port),
    )
    emit({"listening": join_host_port(transport.get_extra_info("sockname"))})
    await wait_for_stop_signal()
    server.close()
    return 0


# ---------------------------------------------------------------------------
# client: RFC 9220 client driven by JSON commands on stdin
#
# JSON on stdout:
#   {"event": "settings", "settings": {"1": 4096, "8": 1, ...}}
#       the server's HTTP/3 SETTINGS (identifiers in decimal)
#   {"event": "no_extended_connect"}                 then exit 3
#   {"status": N, "headers": {name: value}}          the response (no pseudo-headers);
#       the client exits 0 right after it unless N is 2xx
#   {"event": "text", "data": "..."}                 + "len" when over 256 characters;
#       over 4096 characters "data" is the first 256, with "truncated" and "sha256"
#   {"event": "binary", "len": N, "sha256": "hex"}   + "b64" when len <= 256
#   {"event": "ping", "b64": "..."}                  (answered with a pong)
#   {"event": "pong", "b64": "..."}
#   {"event": "close", "code": N|null, "reason": "..."}
#       the server's Close frame (its own or its answer to ours); ours to a
#       server-initiated close echoes its code and reason
#   {"event": "protocol_error", "code": N, "reason": "..."}  invalid frames from the server
#   {"event": "stream_reset", "error_code": N}       the server reset the stream
#   {"event": "stream_ended"}                        FIN without a Close frame
#   {"event": "connection_closed", "error_code": N, "reason": "..."}
#   {"event": "timeout", "phase": "handshake"|"settings"|"response"|"wait_closed"|"bench"}
#   {"event": "error", "message": "..."}             a command that could not be run
#   {"bench": {"messages": N, "bytes": B, "seconds": S, "messages_per_s": R, "mb_per_s": R}}
#
# Commands, one JSON object per line on stdin (EOF = quit):
#   {"text": "..."}   {"binary_b64": "..."}   {"binary_repeat": {"byte": 97, "len": 1048576}}
#   {"fragments": {"opcode": "binary"|"text", "count": N, "size": S, "byte": 98}}
#   {"ping_b64": "..."}   {"close": {"code": 4001, "reason": "bye"}} (code null: no code)
#   {"wait_closed": SECONDS}   {"quit": true}


class ClientWebSocket:
    """The client end of an RFC 9220 WebSocket on one request stream."""

    def __init__(self, protocol, stream_id, quiet_binary):
        self.protocol = protocol
        self.stream_id = stream_id
        # The client masks every frame it sends (RFC 6455 §5.3): RFC 8441 §5
        # keeps the RFC 6455 framing. No HTTP/1.1 handshake: the 200 response
        # already opened it.
        self.ws = Connection(ConnectionType.CLIENT)
        self.messages = MessageAssembler()
        self.quiet_binary = quiet_binary
        self.on_binary = None  # the benchmark's hook
        self.close_seen = False
        self.fin_sent = False

    def send(self, event):
        data = self.ws.send(event)
        self.protocol.h3.send_data(self.stream_id, data, end_stream=False)
        self.finish_if_closed()
        self.protocol.flush()

    def finish_if_closed(self):
        # After the close handshake the stream ends with FIN (RFC 9220 §3).
        if self.ws.state is ConnectionState.CLOSED and not self.fin_sent:
            self.fin_sent = True
            self.protocol.h3.send_data(self.stream_id, b"", end_stream=True)

    def on_data(self, data, ended):
        if data and self.ws.state is not ConnectionState.CLOSED:
            self.ws.receive_data(data)
        for event in self.ws.events():
            self.on_event(event)
        if ended:
            if not self.close_seen:
                emit({"event": "stream_ended"})
                self.protocol.end()
            if not self.fin_sent:
                self.fin_sent = True
                self.protocol.h3.send_data(self.stream_id, b"", end_stream=True)

    def on_event(self, event):
        if isinstance(event, (TextMessage, BytesMessage)):
            message = self.messages.add(event)
            if message is None:
                return
            if isinstance(message, str):
                emit(text_event(message))
                return
            if self.on_binary is not None:
                self.on_binary(message)
            if not self.quiet_binary:
                emit(binary_event(message))
        elif isinstance(event, Ping):
            emit({"event": "ping", "b64": b64(event.payload)})
            self.send(event.response())
        elif isinstance(event, Pong):
            emit({"event": "pong", "b64": b64(event.payload)})
        elif isinstance(event, CloseConnection):
            if self.ws.state is ConnectionState.OPEN:
                # wsproto rejected the server's frames (RFC 6455 §7.1.7).
                emit({"event": "protocol_error", "code": int(event.code), "reason": event.reason})
                self.send(CloseConnection(code=event.code, reason=event.reason))
                return
            emit({"event": "close", "code": close_code(event.code), "reason": event.reason or ""})
            self.close_seen = True
            if self.ws.state is ConnectionState.REMOTE_CLOSING:
                self.send(event.response())
            self.finish_if_closed()
            self.protocol.end()


class H3ClientProtocol(H3Protocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.handshake_done = False
        self.settings_received = asyncio.Event()
        self.response_received = asyncio.Event()
        self.status = None
        self.ended = asyncio.Event()  # the WebSocket, its stream or the connection ended
        self.stream_id = None
        self.websocket = None
        self.quiet_binary = False
        self.closing = False  # we close the connection: no event for it

    def end(self):
        self.ended.set()

    async def until(self, event, timeout):
        """Waits for `event` (an asyncio.Event); False if the stream or the
        connection ends first. Raises asyncio.TimeoutError after `timeout`."""
        waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self.ended.wait())]
        try:
            await asyncio.wait_for(asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED), timeout)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return event.is_set()

    def quic_event_received(self, event):
        if isinstance(event, HandshakeCompleted):
            self.handshake_done = True
        elif isinstance(event, ConnectionTerminated):
            if not self.closing:
                emit({"event": "connection_closed", "error_code": event.error_code, "reason": event.reason_phrase})
            self.end()
        elif isinstance(event, StreamReset) and event.stream_id == self.stream_id:
            emit({"event": "stream_reset", "error_code": event.error_code})
            self.end()
        for h3_event in self.h3.handle_event(event):
            if getattr(h3_event, "stream_id", None) != self.stream_id:
                continue
            if isinstance(h3_event, HeadersReceived) and not self.response_received.is_set():
                self.on_response(h3_event)
            elif isinstance(h3_event, DataReceived) and self.websocket is not None:
                self.websocket.on_data(h3_event.data, h3_event.stream_ended)
        if self.h3.received_settings is not None:
            self.settings_received.set()

    def on_response(self, event):
        self.status = int(dict(event.headers)[b":status"])
        self.response_received.set()
        emit({"status": self.status, "headers": headers_dict(event.headers, skip_pseudo=True)})
        # The WebSocket exists from the 2xx on: DATA right behind the HEADERS
        # (even in the same packet) is already WebSocket data.
        if 200 <= self.status < 300:
            self.websocket = ClientWebSocket(self, self.stream_id, self.quiet_binary)
            if event.stream_ended:
                self.websocket.on_data(b"", True)


async def stdin_reader():
    """A StreamReader on stdin that does not block the event loop."""
    reader = asyncio.StreamReader(limit=256 * 1024 * 1024)
    mode = os.fstat(sys.stdin.fileno()).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or sys.stdin.isatty():
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    else:
        # A regular file or /dev/null, which epoll cannot watch: read it whole.
        reader.feed_data(sys.stdin.buffer.read())
        reader.feed_eof()
    return reader


def command_events(command):
    """The wsproto events that one stdin command sends."""
    if "text" in command:
        return [TextMessage(data=command["text"])]
    if "binary_b64" in command:
        return [BytesMessage(data=base64.b64decode(command["binary_b64"]))]
    if "binary_repeat" in command:
        spec = command["binary_repeat"]
        return [BytesMessage(data=bytes([spec["byte"]]) * spec["len"])]
    if "fragments" in command:
        # One message as `count` frames: the first with the message's opcode,
        # the others CONTINUATION, FIN on the last only (RFC 6455 §5.4).
        spec = command["fragments"]
        count, size, byte = spec["count"], spec["size"], spec.get("byte", 98)
        if spec.get("opcode", "binary") == "text":
            chunk, kind = chr(byte) * size, TextMessage
        else:
            chunk, kind = bytes([byte]) * size, BytesMessage
        return [kind(data=chunk, message_finished=i == count - 1) for i in range(count)]
    if "ping_b64" in command:
        return [Ping(payload=base64.b64decode(command["ping_b64"]))]
    if "close" in command:
        spec = command["close"] or {}
        code = spec.get("code", 1000)
        if code is None:
            # A Close frame without a status code.
            return [CloseConnection(code=CloseReason.NO_STATUS_RCVD)]
        return [CloseConnection(code=code, reason=spec.get("reason", ""))]
    raise ValueError(f"unknown command {command!r}")


async def run_commands(protocol):
    """Runs stdin's commands until EOF, `quit`, or the QUIC connection ends."""
    reader = await stdin_reader()
    connection_closed = asyncio.ensure_future(protocol.wait_closed())
    try:
        while True:
            next_line = asyncio.ensure_future(reader.readline())
            await asyncio.wait([next_line, connection_closed], return_when=asyncio.FIRST_COMPLETED)
            if not next_line.done():
                next_line.cancel()
                return
            line = next_line.result().strip()
            if not line:
                if reader.at_eof():
                    return
                continue
            try:
                command = json.loads(line)
                if command.get("quit"):
                    return
                if "wait_closed" in command:
                    try:
                        await asyncio.wait_for(protocol.ended.wait(), float(command["wait_closed"]))
                    except asyncio.TimeoutError:
                        emit({"event": "timeout", "phase": "wait_closed"})
                    continue
                for event in command_events(command):
                    protocol.websocket.send(event)
            except (AttributeError, KeyError, TypeError, ValueError, LocalProtocolError) as exc:
                emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
    finally:
        connection_closed.cancel()


async def run_bench(protocol, count, size, timeout):
    """Sends `count` binary messages of `size` bytes, at most BENCH_WINDOW
    unanswered at a time, and waits for all the echoes (giving up when none
    comes for `timeout` seconds)."""
    payload = os.urandom(size)
    websocket = protocol.websocket
    received = 0
    bad = 0
    progress = asyncio.Event()

    def on_binary(message):
        nonlocal received, bad
        received += 1
        bad += message != payload
        progress.set()

    websocket.on_binary = on_binary
    start = time.monotonic()
    sent = 0
    while received < count:
        while sent < count and sent - received < BENCH_WINDOW:
            websocket.send(BytesMessage(data=payload))
            sent += 1
        progress.clear()
        try:
            if not await protocol.until(progress, timeout):
                emit({"event": "error", "message": f"benchmark: the WebSocket ended after {received} echoes"})
                return 1
        except asyncio.TimeoutError:
            emit({"event": "timeout", "phase": "bench"})
            return 4
    seconds = time.monotonic() - start
    if bad:
        emit({"event": "error", "message": f"benchmark: {bad} echoes differ from what was sent"})
        return 1
    total = count * size
    emit({"bench": {
        "messages": count,
        "bytes": total,
        "seconds": round(seconds, 6),
        "messages_per_s": round(count / seconds, 1),
        "mb_per_s": round(total / seconds / 1e6, 3),
    }})
    websocket.send(CloseConnection(code=1000, reason=""))
    try:
        await asyncio.wait_for(protocol.ended.wait(), timeout)
    except asyncio.TimeoutError:
        emit({"event": "timeout", "phase": "wait_closed"})
    return 0


async def run_client(args):
    url = args.url
    path = url.path or "/"
    if url.query:
        path += "?" + url.query

    configuration = QuicConfiguration(
        is_client=True,
        alpn_protocols=H3_ALPN,
        max_data=QUIC_MAX_DATA,
        max_stream_data=QUIC_MAX_STREAM_DATA,
        server_name=url.hostname,
    )
    if args.insecure:
        configuration.verify_mode = ssl.CERT_NONE
    elif args.ca:
        # Read now: aioquic would open a cafile only during the handshake,
        # where a missing file stalls it instead of failing.
        with open(args.ca, "rb") as ca:
            configuration.load_verify_locations(cadata=ca.read())

    headers = [(b":method", args.method.encode())]
    if args.protocol != "none":
        headers.append((b":protocol", args.protocol.encode()))
    headers += [
        (b":scheme", b"https"),
        (b":authority", url.netloc.rpartition("@")[2].encode()),
        (b":path", path.encode()),
    ]
    # RFC 8441 §5: Sec-WebSocket-Version keeps its RFC 6455 role (13).
    if args.ws_version != "none":
        headers.append((b"sec-websocket-version", args.ws_version.encode()))
    for name, value in args.header:
        headers.append((name.encode(), value.encode()))

    async with connect(
        url.hostname,
        url.port or 443,
        configuration=configuration,
        create_protocol=H3ClientProtocol,
        wait_connected=False,
    ) as protocol:
        protocol.quiet_binary = args.bench_messages is not None
        protocol.transmit()  # wait_connected=False leaves the first flight to us
        try:
            return await run_client_session(args, protocol, headers)
        finally:
            # Leaving the block closes the connection: send what is queued
            # first, and expect the connection's end.
            protocol.transmit()
            protocol.closing = True


async def run_client_session(args, protocol, headers):
    try:
        # Extended CONNECT only once the server's SETTINGS allow it
        # (RFC 8441 §4, RFC 9220 §3). They come in 1-RTT data, so they also
        # mean the handshake is done.
        if not await protocol.until(protocol.settings_received, args.timeout):
            return 5
        settings = protocol.h3.received_settings
        emit({"event": "settings", "settings": {str(k): v for k, v in settings.items()}})
        extended = args.method == "CONNECT" and args.protocol != "none"
        if extended and settings.get(Setting.ENABLE_CONNECT_PROTOCOL) != 1:
            emit({"event": "no_extended_connect"})
            return 3
        protocol.stream_id = protocol._quic.get_next_available_stream_id()
        protocol.h3.send_headers(protocol.stream_id, headers, end_stream=False)
        protocol.transmit()
        if not await protocol.until(protocol.response_received, args.timeout):
            return 5
    except asyncio.TimeoutError:
        if not protocol.handshake_done:
            phase = "handshake"
        elif protocol.stream_id is None:
            phase = "settings"
        else:
            phase = "response"
        emit({"event": "timeout", "phase": phase})
        return 4
    if not 200 <= protocol.status < 300:
        return 0
    if args.bench_messages is not None:
        return await run_bench(protocol, args.bench_messages, args.bench_size, args.timeout)
    await run_commands(protocol)
    return 0


# ---------------------------------------------------------------------------
# Command line


def url_arg(*schemes):
    def parse(value):
        url = urlsplit(value)
        if url.scheme not in schemes or not url.hostname:
            raise argparse.ArgumentTypeError(f"expected a URL with scheme {' or '.join(schemes)}, got {value!r}")
        return url
    return parse


def regex_arg(value):
    try:
        return re.compile(value)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"bad regex {value!r}: {exc}")


def readable_file(value):
    if not os.access(value, os.R_OK):
        raise argparse.ArgumentTypeError(f"cannot read {value!r}")
    return value


def header_arg(value):
    name, sep, rest = value.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {value!r}")
    return name.strip().lower(), rest.strip()


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Independent WebSocket-over-HTTP/3 (RFC 9220) test peer.")
    modes = parser.add_subparsers(dest="mode", required=True)

    echo = modes.add_parser("echo-backend", help="HTTP/1.1 WebSocket echo server")
    echo.add_argument("--listen", type=split_host_port, required=True, metavar="HOST:PORT")

    client = modes.add_parser("client", help="RFC 9220 client, commands on stdin")
    client.add_argument("--url", type=url_arg("https"), required=True, metavar="https://HOST:PORT/PATH?QUERY")
    trust = client.add_mutually_exclusive_group()
    trust.add_argument("--ca", type=readable_file, metavar="PEMFILE", help="verify the server against this CA")
    trust.add_argument("--insecure", action="store_true", help="do not verify the server")
    client.add_argument("--protocol", default="websocket", help=":protocol value, or 'none' to omit it")
    client.add_argument("--method", default="CONNECT")
    client.add_argument("--ws-version", default="13", help="sec-websocket-version, or 'none' to omit it")
    client.add_argument("--header", type=header_arg, action="append", default=[], metavar="NAME:VALUE")
    client.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    client.add_argument("--bench-messages", type=int, metavar="N")
    client.add_argument("--bench-size", type=int, default=1024, metavar="BYTES")

    server = modes.add_parser("server", help="RFC 9220 server relaying to a WebSocket backend")
    server.add_argument("--listen", type=split_host_port, required=True, metavar="HOST:PORT")
    server.add_argument("--cert", type=readable_file, required=True, metavar="PEM")
    server.add_argument("--key", type=readable_file, required=True, metavar="PEM")
    server.add_argument("--backend", type=url_arg("ws", "wss"), required=True, metavar="ws[s]://HOST:PORT[/PREFIX]")
    server.add_argument("--backend-ca", type=readable_file, metavar="PEM")
    server.add_argument("--path-regex", type=regex_arg, default="^/ws$", metavar="REGEX",
                        help="paths (without the query) accepted for WebSockets")
    return parser.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    runner = {"echo-backend": run_echo_backend, "client": run_client, "server": run_server}[args.mode]
    return asyncio.run(runner(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
