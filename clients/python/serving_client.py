#!/usr/bin/python3
"""A small MessagePack-RPC client for the Serving server (protocol: docs/rpc.md).

Needs only the standard library and msgpack. Use Debian's python3-msgpack (scripts/setup.sh installs it) and run
with /usr/bin/python3, which is the interpreter that package installs into:

    /usr/bin/python3 clients/python/serving_client.py --port 7411 generate "Once upon a time"

As a library:

    with ServingClient(port=7411, token=None) as c:
        print(c.call("server.info"))
        stream = c.generate("Once upon a time", stream=True, max_tokens=16)
        for piece in stream:              # one dict per generate.token notification: {"id", "text", "token"}
            print(piece["text"], end="")
        print(stream.result["usage"])     # the final reply (text, tokens, finish_reason, usage, ...)

One connection, one thread: replies may arrive out of order and notifications interleave with them, so every
message read is routed by msgid (responses) or by the "id" in a generate.token notification, and kept until the
caller that waits for it asks. This is what lets `cancel()` be called in the middle of a stream.
"""

import argparse
import json
import socket
import sys

try:
    import msgpack
except ImportError:  # pragma: no cover - the message is the point
    sys.stderr.write("serving_client: the msgpack module is missing; run scripts/setup.sh "
                     "(Debian python3-msgpack) and use /usr/bin/python3\n")
    raise

REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2


class RpcError(Exception):
    """An error reply {code, message, data?}; `code` is one of the stable codes of docs/rpc.md."""

    def __init__(self, code, message, data=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class ConnectionClosed(Exception):
    """The server closed the connection (after a protocol error, too many auth failures, a timeout or shutdown)."""


class GenerateStream:
    """Iterates the generate.token notifications of one streaming request; `result` holds the final reply.

    Iteration ends when the final reply arrives. An error reply (e.g. unavailable) is raised from the loop.
    A cancelled generation ends normally, with result["finish_reason"] == "cancelled".
    """

    def __init__(self, client, msgid):
        self._client = client
        self.msgid = msgid
        self.result = None

    def __iter__(self):
        c = self._client
        while True:
            note = c._take_note(self.msgid)
            if note is not None:
                yield note
                continue
            if self.msgid in c._replies:
                # Notifications are sent before the reply on one ordered stream, so none can follow it.
                self.result = c._take_reply(self.msgid)
                c._notes.pop(self.msgid, None)
                return
            c._read_one()

    def cancel(self):
        """Asks the server to cancel this request; True, or RpcError not_found when it has already ended."""
        return self._client.cancel(self.msgid)


class ServingClient:
    """One TCP connection to a Serving server. Not thread-safe: use one client per thread."""

    def __init__(self, host="127.0.0.1", port=7411, token=None, timeout=30.0):
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # raw=False: str → Python str (the server sends valid UTF-8); bin stays bytes.
        self._unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=8 << 20)
        self._next_id = 1
        self._replies = {}  # msgid → (error, result)
        self._notes = {}    # msgid → [generate.token params, ...] not yet consumed
        self.notifications = []  # other notifications, in arrival order
        if token is not None:
            self.call("auth", token=token)

    # ---------------------------------------------------------------- plumbing

    def close(self):
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, method, params):
        msgid = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        # Named arguments: params is a one-element array holding a map.
        self._sock.sendall(msgpack.packb([REQUEST, msgid, method, [params]], use_bin_type=True))
        return msgid

    def _read_one(self):
        """Reads from the socket until at least one whole message is routed."""
        while True:
            for msg in self._unpacker:
                self._route(msg)
                return
            data = self._sock.recv(65536)
            if not data:
                raise ConnectionClosed("the server closed the connection")
            self._unpacker.feed(data)

    def _route(self, msg):
        if not isinstance(msg, list) or not msg:
            raise ConnectionClosed(f"unexpected message from the server: {msg!r}")
        if msg[0] == RESPONSE and len(msg) == 4:
            self._replies[msg[1]] = (msg[2], msg[3])
        elif msg[0] == NOTIFICATION and len(msg) == 3:
            method, params = msg[1], msg[2]
            args = params[0] if isinstance(params, list) and params and isinstance(params[0], dict) else {}
            if method == "generate.token" and "id" in args:
                self._notes.setdefault(args["id"], []).append(args)
            else:
                self.notifications.append((method, params))
        else:
            raise ConnectionClosed(f"unexpected message from the server: {msg!r}")

    def _take_note(self, msgid):
        queue = self._notes.get(msgid)
        return queue.pop(0) if queue else None

    def _take_reply(self, msgid):
        error, result = self._replies.pop(msgid)
        if error is not None:
            if isinstance(error, dict):
                raise RpcError(error.get("code", "internal"), error.get("message", ""), error.get("data"))
            raise RpcError("internal", repr(error))
        return result

    def _wait(self, msgid):
        while msgid not in self._replies:
            self._read_one()
        return self._take_reply(msgid)

    # ---------------------------------------------------------------- API

    def call(self, method, **params):
        """Calls `method` with named arguments and returns its result; raises RpcError for an error reply."""
        return self._wait(self._send(method, params))

    def generate(self, prompt, stream=False, **params):
        """Generates from `prompt` (str, or a list of token ids).

        stream=False: returns the final reply (a dict). stream=True: returns a GenerateStream that yields each
        generate.token notification ({"id", "text", "token"}) and then holds the final reply in `.result`.
        Other keyword arguments are generate's parameters (max_tokens, temperature, top_k, seed, stop, ...).
        """
        args = dict(params)
        args["tokens" if isinstance(prompt, list) else "prompt"] = prompt
        if stream:
            args["stream"] = True
            return GenerateStream(self, self._send("generate", args))
        return self.call("generate", **args)

    def cancel(self, msgid):
        """Cancels this connection's own request `msgid`: True, or RpcError not_found if it is not in flight."""
        return self.call("cancel", msgid=msgid)


def _main(argv):
    ap = argparse.ArgumentParser(description="Serving MessagePack-RPC example client (see docs/rpc.md)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7411)
    ap.add_argument("--token-file", help="file holding the server's shared secret (serve --token-file)")
    ap.add_argument("--json", action="store_true", help="print one JSON object per event instead of plain text")
    sub = ap.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="stream a generation")
    g.add_argument("prompt")
    g.add_argument("--max-tokens", type=int, default=64)
    g.add_argument("--temperature", type=float)
    g.add_argument("--seed", type=int)
    g.add_argument("--cancel-after", type=int, metavar="N", help="cancel the request after N streamed tokens")
    c = sub.add_parser("call", help="call any method with a JSON map of arguments")
    c.add_argument("method")
    c.add_argument("args", nargs="?", default="{}")
    opts = ap.parse_args(argv)

    def emit(obj):
        print(json.dumps(obj, ensure_ascii=False), flush=True)

    token = None
    if opts.token_file:
        with open(opts.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    try:
        with ServingClient(opts.host, opts.port, token=token) as client:
            if opts.command == "call":
                result = client.call(opts.method, **json.loads(opts.args))
                emit(result) if opts.json else print(result)
                return 0
            params = {"max_tokens": opts.max_tokens}
            if opts.temperature is not None:
                params["temperature"] = opts.temperature
            if opts.seed is not None:
                params["seed"] = opts.seed
            stream = client.generate(opts.prompt, stream=True, **params)
            if opts.json:
                emit({"event": "request", "msgid": stream.msgid})
            count = 0
            for note in stream:
                count += 1
                if opts.json:
                    emit({"event": "token", **note})
                else:
                    print(note["text"], end="", flush=True)
                if opts.cancel_after is not None and count == opts.cancel_after:
                    ok = stream.cancel()
                    if opts.json:
                        emit({"event": "cancel", "msgid": stream.msgid, "result": ok})
            if opts.json:
                emit({"event": "result", "msgid": stream.msgid, "result": stream.result})
            else:
                r = stream.result
                u = r["usage"]
                print(f"\n[{r['finish_reason']}: {u['prompt_tokens']} prompt + {u['completion_tokens']} generated tokens, "
                      f"ttft {u['ttft_ms'] or 0:.1f} ms, tpot {u['tpot_ms'] or 0:.2f} ms]", file=sys.stderr)
            return 0
    except RpcError as e:
        if opts.json:
            emit({"event": "error", "code": e.code, "message": e.message, "data": e.data})
        else:
            print(f"error: {e}", file=sys.stderr)
        return 1
    except (OSError, ConnectionClosed) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
