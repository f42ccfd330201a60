#!/usr/bin/env node
// A small MessagePack-RPC client for the Serving server (protocol: docs/rpc.md), on @msgpack/msgpack.
//
//   cd clients/node && npm install
//   node clients/node/client.mjs --port 7411 generate "Once upon a time"
//
// As a library:
//
//   import { ServingClient } from "./client.mjs";
//   const c = await ServingClient.connect({ port: 7411, token });
//   const s = c.generate("Once upon a time", { stream: true, max_tokens: 16 });
//   for await (const piece of s) process.stdout.write(piece.text);   // {id, text, token} per generate.token
//   console.log((await s.result).usage);
//   c.close();
//
// One connection: replies may come out of order and notifications interleave with them, so one reader loop
// routes every message, responses by msgid and generate.token notifications by their "id".

import net from "node:net";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { Encoder, decodeMultiStream } from "@msgpack/msgpack";

const REQUEST = 0, RESPONSE = 1, NOTIFICATION = 2;

/** An error reply {code, message, data?}; code is one of the stable codes of docs/rpc.md. */
export class RpcError extends Error {
  constructor(code, message, data) {
    super(`${code}: ${message}`);
    this.code = code;
    this.data = data;
  }
}

/** The generate.token notifications of one streaming request, as an async iterable; `result` is the final reply. */
export class GenerateStream {
  constructor(client, msgid, result) {
    this.msgid = msgid;
    this.result = result;   // Promise of the final reply (rejects with RpcError)
    this._client = client;
    this._queue = [];
    this._wake = null;
    this._done = false;
    // Ends the iteration once the reply is in: notifications precede the reply on the ordered stream.
    result.then(() => this._end(), () => this._end());
  }

  _push(note) {
    this._queue.push(note);
    this._wake?.();
  }

  _end() {
    this._done = true;
    this._wake?.();
  }

  async *[Symbol.asyncIterator]() {
    while (true) {
      if (this._queue.length > 0) {
        yield this._queue.shift();
        continue;
      }
      if (this._done) break;
      await new Promise((resolve) => (this._wake = resolve));
      this._wake = null;
    }
    await this.result; // surfaces an error reply to the loop
  }

  /** Cancels this request: true, or RpcError not_found when it has already ended. */
  cancel() {
    return this._client.cancel(this.msgid);
  }
}

export class ServingClient {
  constructor(socket) {
    this._socket = socket;
    this._encoder = new Encoder({ useBigInt64: true });
    this._nextId = 1;
    this._pending = new Map(); // msgid → {resolve, reject}
    this._streams = new Map(); // msgid → GenerateStream
    this._closedError = null;
    this.notifications = [];   // other notifications: [method, params]
    this._reader = this._readLoop();
  }

  /** Connects (and authenticates when a token is given). */
  static async connect({ host = "127.0.0.1", port = 7411, token = null } = {}) {
    const socket = await new Promise((resolve, reject) => {
      const s = net.createConnection({ host, port }, () => resolve(s));
      s.once("error", reject);
    });
    socket.setNoDelay(true);
    const client = new ServingClient(socket);
    if (token != null) await client.call("auth", { token });
    return client;
  }

  async _readLoop() {
    let error = new Error("the server closed the connection");
    try {
      // useBigInt64: 64-bit integers (e.g. a generate seed) come back exact, as BigInt.
      for await (const msg of decodeMultiStream(this._socket, { useBigInt64: true })) this._route(msg);
    } catch (e) {
      error = e;
    }
    this._closedError = error;
    for (const { reject } of this._pending.values()) reject(error);
    this._pending.clear();
  }

  _route(msg) {
    if (!Array.isArray(msg)) throw new Error(`unexpected message ${JSON.stringify(msg)}`);
    if (msg[0] === RESPONSE && msg.length === 4) {
      const [, msgid, error, result] = msg;
      const waiter = this._pending.get(msgid);
      if (!waiter) return;
      this._pending.delete(msgid);
      if (error == null) waiter.resolve(result);
      else if (typeof error === "object" && typeof error.code === "string") waiter.reject(new RpcError(error.code, error.message ?? "", error.data));
      else waiter.reject(new RpcError("internal", String(error)));
    } else if (msg[0] === NOTIFICATION && msg.length === 3) {
      const [, method, params] = msg;
      const args = Array.isArray(params) && params.length === 1 ? params[0] : null;
      const stream = method === "generate.token" && args ? this._streams.get(Number(args.id)) : undefined;
      if (stream) stream._push(args);
      else this.notifications.push([method, params]);
    } else {
      throw new Error(`unexpected message ${JSON.stringify(msg, jsonSafe)}`);
    }
  }

  _send(method, params) {
    if (this._closedError) return { msgid: -1, reply: Promise.reject(this._closedError) };
    const msgid = this._nextId;
    this._nextId = (this._nextId + 1) >>> 0;
    const reply = new Promise((resolve, reject) => this._pending.set(msgid, { resolve, reject }));
    // Named arguments: params is a one-element array holding a map.
    this._socket.write(this._encoder.encode([REQUEST, msgid, method, [params]]));
    return { msgid, reply };
  }

  /** Calls `method` with a map of named arguments; resolves to the result, rejects with RpcError. */
  call(method, params = {}) {
    return this._send(method, params).reply;
  }

  /**
   * Generates from `prompt` (a string, or an array of token ids). Without `stream: true` resolves to the final
   * reply; with it returns a GenerateStream at once. Other options are generate's parameters (max_tokens, ...).
   */
  generate(prompt, { stream = false, ...params } = {}) {
    const args = { ...params, [Array.isArray(prompt) ? "tokens" : "prompt"]: prompt };
    if (!stream) return this.call("generate", args);
    const { msgid, reply } = this._send("generate", { ...args, stream: true });
    const s = new GenerateStream(this, msgid, reply);
    this._streams.set(msgid, s);
    const forget = () => this._streams.delete(msgid);
    reply.then(forget, forget);
    return s;
  }

  /** Cancels this connection's own request `msgid`: true, or RpcError not_found when it is not in flight. */
  cancel(msgid) {
    return this.call("cancel", { msgid });
  }

  close() {
    this._socket.end();
    this._socket.destroy();
  }
}

function jsonSafe(_key, value) {
  return typeof value === "bigint" ? (Number.isSafeInteger(Number(value)) ? Number(value) : value.toString()) : value;
}

async function main(argv) {
  const opts = { host: "127.0.0.1", port: 7411, tokenFile: null, json: false, maxTokens: 64, cancelAfter: null };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--host") opts.host = argv[++i];
    else if (a === "--port") opts.port = Number(argv[++i]);
    else if (a === "--token-file") opts.tokenFile = argv[++i];
    else if (a === "--json") opts.json = true;
    else if (a === "--max-tokens") opts.maxTokens = Number(argv[++i]);
    else if (a === "--cancel-after") opts.cancelAfter = Number(argv[++i]);
    else rest.push(a);
  }
  const [command, ...args] = rest;
  if (!["generate", "call"].includes(command) || args.length < 1) {
    console.error("usage: client.mjs [--host H] [--port P] [--token-file F] [--json] generate [--max-tokens N] [--cancel-after N] PROMPT\n" +
      "       client.mjs [--port P] [--token-file F] call METHOD [JSON-ARGS]");
    return 64;
  }
  const emit = (obj) => console.log(JSON.stringify(obj, jsonSafe));
  const token = opts.tokenFile ? readFileSync(opts.tokenFile, "utf8").trim() : null;
  let client;
  try {
    client = await ServingClient.connect({ host: opts.host, port: opts.port, token });
    if (command === "call") {
      const result = await client.call(args[0], JSON.parse(args[1] ?? "{}"));
      emit(result);
      return 0;
    }
    const stream = client.generate(args[0], { stream: true, max_tokens: opts.maxTokens });
    if (opts.json) emit({ event: "request", msgid: stream.msgid });
    let count = 0;
    for await (const note of stream) {
      count++;
      if (opts.json) emit({ event: "token", ...note });
      else process.stdout.write(note.text);
      if (opts.cancelAfter != null && count === opts.cancelAfter) {
        const ok = await stream.cancel();
        if (opts.json) emit({ event: "cancel", msgid: stream.msgid, result: ok });
      }
    }
    const r = await stream.result;
    if (opts.json) emit({ event: "result", msgid: stream.msgid, result: r });
    else {
      const u = r.usage;
      console.error(`\n[${r.finish_reason}: ${u.prompt_tokens} prompt + ${u.completion_tokens} generated tokens, ` +
        `ttft ${(u.ttft_ms ?? 0).toFixed(1)} ms, tpot ${(u.tpot_ms ?? 0).toFixed(2)} ms]`);
    }
    return 0;
  } catch (e) {
    if (e instanceof RpcError) {
      if (opts.json) emit({ event: "error", code: e.code, message: e.message, data: e.data });
      else console.error(`error: ${e.message}`);
      return 1;
    }
    console.error(`error: ${e.message}`);
    return 2;
  } finally {
    client?.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  process.exitCode = await main(process.argv.slice(2));
}
