#!/usr/bin/python3
"""A contract-only HTTVPS gateway, independent of this project's code.

It speaks exactly the seed contract (docs/protocol.md without its
extensions), so tests can check our client against a peer that does not
share our code, our assumptions or our extensions:

- TLS WebSocket on /ws (any other path: 404); one text message = one JSON frame;
  binary messages are a violation (answered `bad_frame`);
- `hello` with a token from the token file (or HTTVPS_CONTRACT_TOKENS) and
  version "1", answered `ready` with `max_streams` and NO `features` (any
  `features` the client offers are ignored);
- `stream_open`; the first bytes of each stream are a Shadowsocks/SOCKS5
  address header, which this gateway reads and dials itself (direct mode,
  no target policy: this is a test peer on loopback);
- `stream_data` as base64 JSON text both ways, up to 64 KiB per frame;
- `stream_close` with reason `eof` when the target closes; a client
  `stream_close` ends the upstream connection (both directions);
- a `ping` is answered with `pong`, and the gateway pings every
  `--ping-interval` seconds (1 s by default) itself;
- `max_streams` is enforced: a `stream_open` past the limit gets an `error`
  (code `stream_error`, with `stream_id`, reason `limit`) and a `stream_close`.

Usage (the token is never on the command line):

    contract_gateway.py --cert CERT --key KEY --tokens FILE [--max-streams 2]
        [--ping-interval 1.0] [--listen 127.0.0.1] [--port 0]

Prints the listening port on stdout (one line) once it accepts connections.
Logs go to stderr: one line per session and per stream (open, close, why);
with HTTVPS_CONTRACT_DEBUG=1 also every control frame.

Needs Debian's python3-websockets (the legacy asyncio API of websockets 10).
"""

import argparse
import asyncio
import base64
import binascii
import ipaddress
import json
import os
import signal
import ssl
import sys
import time
import uuid

import websockets

MAX_FRAME_LEN = 256 * 1024
READ_CHUNK = 64 * 1024
# Client bytes waiting for a slow target, per stream (contract: bounded).
UPSTREAM_QUEUE_FRAMES = 64
CONNECT_TIMEOUT = 10.0
HELLO_TIMEOUT = 10.0
DEBUG = os.environ.get("HTTVPS_CONTRACT_DEBUG") not in (None, "", "0")

STARTED = time.monotonic()


def log(*parts):
    print(f"[contract-gw {time.monotonic() - STARTED:8.3f}]", *parts, file=sys.stderr, flush=True)


def debug(*parts):
    if DEBUG:
        log(*parts)


def frame(**fields):
    return json.dumps(fields, separators=(",", ":"))


def parse_address_header(buf):
    """Returns (host, port, header_len), or None when more bytes are needed.
    Raises ValueError for a header that can never be valid."""
    if not buf:
        return None
    kind = buf[0]
    if kind == 0x01:
        need = 1 + 4 + 2
        if len(buf) < need:
            return None
        host = str(ipaddress.IPv4Address(bytes(buf[1:5])))
    elif kind == 0x04:
        need = 1 + 16 + 2
        if len(buf) < need:
            return None
        host = str(ipaddress.IPv6Address(bytes(buf[1:17])))
    elif kind == 0x03:
        if len(buf) < 2:
            return None
        n = buf[1]
        if n == 0:
            raise ValueError("empty host name in the address header")
        need = 2 + n + 2
        if len(buf) < need:
            return None
        host = bytes(buf[2 : 2 + n]).decode("idna")
    else:
        raise ValueError(f"unknown address type 0x{kind:02x}")
    port = int.from_bytes(buf[need - 2 : need], "big")
    return host, port, need


class Stream:
    """One stream: the address header being read, then the upstream connection."""

    def __init__(self, session, stream_id, target):
        self.session = session
        self.id = stream_id
        self.target = target
        self.header = bytearray()
        self.dialing = False
        self.queue = asyncio.Queue(UPSTREAM_QUEUE_FRAMES)
        self.writer = None
        self.tasks = []
        self.closed = False
        self.opened_at = time.monotonic()
        self.bytes_up = 0
        self.bytes_down = 0

    def feed(self, data):
        """Bytes from the client, in order."""
        if self.dialing:
            self.bytes_up += len(data)
            try:
                self.queue.put_nowait(data)
            except asyncio.QueueFull:
                self.session.end_stream(self, "slow_upstream", error="the target reads too slowly")
            return
        self.header += data
        try:
            parsed = parse_address_header(self.header)
        except ValueError as e:
            self.session.end_stream(self, "bad_stream", error=str(e), code="bad_stream")
            return
        if parsed is None:
            return
        host, port, used = parsed
        rest = bytes(self.header[used:])
        self.header = bytearray()
        self.dialing = True
        if rest:
            self.bytes_up += len(rest)
            self.queue.put_nowait(rest)
        log(f"stream {self.id}: dialing {host}:{port} (stream_open said {self.target})")
        self.tasks.append(asyncio.ensure_future(self.run(host, port)))

    async def run(self, host, port):
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), CONNECT_TIMEOUT
            )
        except asyncio.TimeoutError:
            self.session.end_stream(self, "timeout", error=f"connecting to {host}:{port} timed out")
            return
        except ConnectionRefusedError:
            self.session.end_stream(self, "refused", error=f"{host}:{port} refused the connection")
            return
        except OSError as e:
            self.session.end_stream(self, "unreachable", error=f"{host}:{port}: {e}")
            return
        if self.closed:
            writer.close()
            return
        self.writer = writer
        debug(f"stream {self.id}: connected")
        self.tasks.append(asyncio.ensure_future(self.pump_up(writer)))
        await self.pump_down(reader)

    async def pump_up(self, writer):
        """Client bytes to the target."""
        try:
            while True:
                data = await self.queue.get()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError) as e:
            self.session.end_stream(self, "upstream_error", error=f"writing to the target failed: {e}")

    async def pump_down(self, reader):
        """Target bytes to the client, one read per frame; `eof` at the end."""
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                if self.closed:
                    return
                self.bytes_down += len(data)
                await self.session.send(
                    frame(
                        type="stream_data",
                        stream_id=self.id,
                        data=base64.b64encode(data).decode("ascii"),
                    )
                )
        except (ConnectionError, OSError) as e:
            self.session.end_stream(self, "upstream_error", error=f"reading from the target failed: {e}")
            return
        except websockets.ConnectionClosed:
            return
        self.session.end_stream(self, "eof")

    def stop(self):
        """Drops the upstream connection and the tasks (the stream has ended)."""
        self.closed = True
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()
        if self.writer is not None:
            self.writer.close()


class Session:
    def __init__(self, ws, args):
        self.ws = ws
        self.args = args
        self.id = str(uuid.uuid4())
        self.streams = {}
        # Ids seen in this session: frames for a closed one are dropped quietly.
        self.used = set()

    async def send(self, text):
        await self.ws.send(text)

    def send_soon(self, text):
        """Queues a frame from synchronous code; frames keep their order."""
        asyncio.ensure_future(self._send_quietly(text))

    async def _send_quietly(self, text):
        try:
            await self.ws.send(text)
        except websockets.ConnectionClosed:
            pass

    def end_stream(self, stream, reason, error=None, code="stream_error", tell_client=True):
        """Ends `stream` once; tells the client (error frame when `error`,
        then stream_close) unless the client ended it."""
        if self.streams.get(stream.id) is not stream:
            return
        del self.streams[stream.id]
        stream.stop()
        took = time.monotonic() - stream.opened_at
        log(
            f"stream {stream.id}: closed ({reason}{', by the client' if not tell_client else ''})"
            f" up={stream.bytes_up} down={stream.bytes_down} after {took:.2f}s; open now: {len(self.streams)}"
        )
        if not tell_client:
            return
        if error is not None:
            self.send_soon(
                frame(type="error", code=code, message=error, stream_id=stream.id, reason=reason)
            )
        self.send_soon(frame(type="stream_close", stream_id=stream.id, reason=reason))

    async def pinger(self):
        while True:
            await asyncio.sleep(self.args.ping_interval)
            debug(f"session {self.id}: ping")
            await self._send_quietly(frame(type="ping"))

    async def handshake(self):
        """Reads hello; returns True once ready is sent."""
        try:
            first = await asyncio.wait_for(self.ws.recv(), HELLO_TIMEOUT)
        except asyncio.TimeoutError:
            await self.refuse("bad_hello", "no hello in time")
            return False
        try:
            hello = json.loads(first) if isinstance(first, str) else None
        except ValueError:
            hello = None
        if not isinstance(hello, dict) or hello.get("type") != "hello" or not isinstance(
            hello.get("session_token"), str
        ):
            await self.refuse("bad_hello", "the first frame must be a hello")
            return False
        if hello.get("version") != "1":
            await self.refuse("bad_version", "version must be \"1\"")
            return False
        if hello["session_token"] not in self.args.token_set:
            await self.refuse("auth_failed", "unknown session token")
            return False
        log(f"session {self.id}: hello from {hello.get('client')!r} offering {hello.get('features')} (ignored)")
        await self.send(frame(type="ready", session_id=self.id, max_streams=self.args.max_streams))
        return True

    async def refuse(self, code, message):
        log(f"session {self.id}: refused: {code}")
        try:
            await self.send(frame(type="error", code=code, message=message))
            await self.ws.close()
        except websockets.ConnectionClosed:
            pass

    async def serve(self):
        if not await self.handshake():
            return
        pinger = asyncio.ensure_future(self.pinger())
        try:
            async for message in self.ws:
                self.handle(message)
        except websockets.ConnectionClosed as e:
            log(f"session {self.id}: connection closed: {e}")
        finally:
            pinger.cancel()
            for stream in list(self.streams.values()):
                self.end_stream(stream, "shutdown", tell_client=False)
            log(f"session {self.id}: ended")

    def handle(self, message):
        if isinstance(message, bytes):
            self.send_soon(frame(type="error", code="bad_frame", message="binary messages are not part of the contract"))
            return
        try:
            f = json.loads(message)
            kind = f["type"]
        except (ValueError, KeyError, TypeError):
            self.send_soon(frame(type="error", code="bad_frame", message="not a JSON frame"))
            return
        if kind == "stream_data":
            self.on_data(f)
            return
        debug(f"session {self.id}: <- {message[:200]}")
        if kind == "ping":
            self.send_soon(frame(type="pong"))
        elif kind == "pong":
            pass
        elif kind == "stream_open":
            self.on_open(f)
        elif kind == "stream_close":
            sid = f.get("stream_id")
            stream = self.streams.get(sid)
            if stream is not None:
                self.end_stream(stream, f"client: {f.get('reason')}", tell_client=False)
            elif sid not in self.used:
                self.stream_error(sid, "bad_stream", "stream_close for a stream that never existed")
        else:
            self.send_soon(frame(type="error", code="unsupported", message=f"unknown frame type {kind!r}"))

    def stream_error(self, sid, reason, message, code="stream_error"):
        self.send_soon(frame(type="error", code=code, message=message, stream_id=sid, reason=reason))
        self.send_soon(frame(type="stream_close", stream_id=sid, reason=reason))

    def on_open(self, f):
        sid, target = f.get("stream_id"), f.get("target")
        if not isinstance(sid, str) or not sid or not isinstance(target, str):
            self.send_soon(frame(type="error", code="bad_stream", message="stream_open needs stream_id and target"))
            return
        if sid in self.used:
            self.stream_error(sid, "bad_stream", f"stream id {sid} was already used")
            return
        self.used.add(sid)
        if len(self.streams) >= self.args.max_streams:
            log(f"stream {sid}: refused, {len(self.streams)} of {self.args.max_streams} streams open ({sorted(self.streams)})")
            self.stream_error(sid, "limit", f"max_streams ({self.args.max_streams}) reached")
            return
        self.streams[sid] = Stream(self, sid, target)
        log(f"stream {sid}: open to {target}; open now: {len(self.streams)}")

    def on_data(self, f):
        sid = f.get("stream_id")
        stream = self.streams.get(sid)
        if stream is None:
            if sid not in self.used:
                self.stream_error(sid, "bad_stream", "stream_data for a stream that never existed")
            return  # in flight after a close: dropped quietly
        try:
            data = base64.b64decode(f.get("data", ""), validate=True)
        except (binascii.Error, TypeError, ValueError):
            self.end_stream(stream, "bad_stream", error="bad base64", code="bad_stream")
            return
        if data:
            stream.feed(data)


def parse_args():
    p = argparse.ArgumentParser(description="contract-only HTTVPS gateway (test peer)")
    p.add_argument("--cert", default=os.environ.get("HTTVPS_CONTRACT_CERT"), help="certificate (PEM)")
    p.add_argument("--key", default=os.environ.get("HTTVPS_CONTRACT_KEY"), help="private key (PEM)")
    p.add_argument(
        "--tokens",
        default=os.environ.get("HTTVPS_CONTRACT_TOKENS_FILE"),
        help="file with the accepted session tokens, one per line (# comments)",
    )
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--path", default="/ws")
    p.add_argument("--max-streams", type=int, default=2)
    p.add_argument("--ping-interval", type=float, default=1.0)
    args = p.parse_args()
    if not args.cert or not args.key:
        p.error("--cert and --key (or HTTVPS_CONTRACT_CERT/KEY) are required")
    tokens = set()
    if args.tokens:
        with open(args.tokens, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line and not line.startswith("#"):
                    tokens.add(line)
    tokens.update(t for t in os.environ.get("HTTVPS_CONTRACT_TOKENS", "").split(",") if t)
    if not tokens:
        p.error("no token accepted: give --tokens FILE or HTTVPS_CONTRACT_TOKENS")
    args.token_set = tokens
    return args


async def main():
    args = parse_args()
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(args.cert, args.key)

    async def process_request(path, headers):
        if path != args.path:
            return 404, [("Content-Type", "text/plain")], b"not found\n"
        return None

    async def handler(ws, path=None):
        session = Session(ws, args)
        log(f"session {session.id}: connected from {ws.remote_address}")
        await session.serve()

    server = await websockets.serve(
        handler,
        args.listen,
        args.port,
        ssl=tls,
        process_request=process_request,
        # The contract's frame limit; its keepalive is its own ping frames.
        max_size=MAX_FRAME_LEN,
        ping_interval=None,
        compression=None,
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    log(f"listening on {args.listen}:{port}{args.path}, max_streams {args.max_streams}, ping every {args.ping_interval}s")
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    await stop
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
