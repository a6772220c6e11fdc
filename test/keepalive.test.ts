/**
 * Dead-peer detection: TCP keepalive on sockets roam creates and accepts
 * (checked in the kernel's own socket table, /proc/net/tcp), and WebSocket
 * ping/pong on both ends, which lets a reconnecting client leave a silent peer.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { WebSocket, WebSocketServer } from "ws";
import { t, defineService, method, arg, serve, client, ReconnectingClient, Link, WebSocketTransport, type WebSocketLike } from "../src/index.js";
import { connectTcp, connectWebSocket, listenTcp, listenWebSocket } from "../src/node.js";
import { resolveLinkOptions } from "../src/transport/link-options.js";
import { openLink } from "../src/transport/open-link.js";
import { until } from "./helpers/reconnect-fixture.js";

const Svc = defineService("KeepAlive", { echo: method([arg("s", t.string)], t.string) });
const dispatcher = () => serve(Svc, { echo: (s) => s });

/** The timer column of /proc/net/tcp for the socket local:remote (127.0.0.1): [kind, remaining USER_HZ ticks]. */
function tcpTimer(localPort: number, remotePort: number): [number, number] | null {
  const hex = (p: number) => `0100007F:${p.toString(16).toUpperCase().padStart(4, "0")}`;
  for (const line of fs.readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === hex(localPort) && f[2] === hex(remotePort)) {
      const [kind, when] = f[5]!.split(":");
      return [parseInt(kind!, 16), parseInt(when!, 16)];
    }
  }
  return null;
}

test("TCP keepalive is on by default on both ends, with the documented idle time; off when asked", async () => {
  for (const [opts, expectKind, maxTicks] of [
    [{}, 2, 1500],
    [{ keepAliveInitialDelayMs: 5_000 }, 2, 500],
    [{ keepAlive: false }, 0, 0],
  ] as const) {
    const accepted: Link[] = [];
    const server = await listenTcp({ port: 0, dispatcher: dispatcher(), onLink: (l) => accepted.push(l), ...opts });
    const link = await connectTcp({ port: server.port!, ...opts });
    try {
      assert.equal(await client(Svc, link.root).echo("x"), "x");
      await until(() => accepted.length === 1);
      const clientPort = Number(/:(\d+)$/.exec(accepted[0]!.transport.description)![1]);
      // Kind 1 (retransmit) shows while the last segments await their ACK: wait for the link to go idle.
      let c = tcpTimer(clientPort, server.port!);
      let s = tcpTimer(server.port!, clientPort);
      for (let i = 0; i < 100 && (c?.[0] === 1 || s?.[0] === 1); i++) {
        await new Promise((r) => setTimeout(r, 10));
        c = tcpTimer(clientPort, server.port!);
        s = tcpTimer(server.port!, clientPort);
      }
      assert.ok(c && s, "both sockets are in /proc/net/tcp");
      // Timer kind 2 = keepalive; its remaining time is in 1/100 s.
      assert.equal(c[0], expectKind, `client timer ${JSON.stringify(c)} for ${JSON.stringify(opts)}`);
      assert.equal(s[0], expectKind, `server timer ${JSON.stringify(s)} for ${JSON.stringify(opts)}`);
      if (expectKind === 2) {
        assert.ok(c[1] <= maxTicks && c[1] > maxTicks - 300, `client keepalive due in ${c[1]} ticks`);
        assert.ok(s[1] <= maxTicks && s[1] > maxTicks - 300, `server keepalive due in ${s[1]} ticks`);
      }
    } finally {
      link.close();
      await server.close();
    }
  }
});

test("a WebSocket server cuts a client that stops answering pings", async () => {
  const server = await listenWebSocket({ port: 0, dispatcher: dispatcher(), pingIntervalMs: 100 });
  const silent = new WebSocket(`ws://127.0.0.1:${server.port}/`, { autoPong: false });
  const polite = new WebSocket(`ws://127.0.0.1:${server.port}/`);
  try {
    await until(() => server.links.size === 2, 5_000, "both links");
    await until(() => server.links.size === 1, 3_000, "the silent client to be cut");
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(server.links.size, 1, "the client that answers pings stays");
    assert.equal(silent.readyState === WebSocket.CLOSED || silent.readyState === WebSocket.CLOSING, true);
  } finally {
    silent.terminate();
    polite.terminate();
    await server.close();
  }
});

test("a reconnecting WebSocket client leaves a peer that went silent and finishes the call elsewhere", async () => {
  // A peer that accepted the link, then went silent: no pongs, no responses.
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", autoPong: false });
  await new Promise<void>((r) => wss.once("listening", () => r()));
  const silentLinks: Link[] = [];
  const hung = serve(Svc, { echo: () => new Promise<string>(() => undefined) });
  wss.on("connection", (ws) => {
    const l = openLink(new WebSocketTransport(ws as unknown as WebSocketLike), { ...resolveLinkOptions({ dispatcher: hung }), initiator: false });
    silentLinks.push(l);
  });
  const good = await listenWebSocket({ port: 0, dispatcher: dispatcher() });
  const urls = [`ws://127.0.0.1:${(wss.address() as { port: number }).port}/`, `ws://127.0.0.1:${good.port}/`];
  let i = 0;
  const rc = new ReconnectingClient(() => connectWebSocket(urls[Math.min(i++, 1)]!, { pingIntervalMs: 150 }), { policy: { initialBackoffMs: 10 } });
  try {
    const t0 = performance.now();
    assert.equal(await client(Svc, rc).echo("still here"), "still here");
    const took = performance.now() - t0;
    assert.equal(rc.connects, 2);
    assert.ok(took >= 150 && took < 3_000, `detected and recovered in ${took.toFixed(0)} ms`);
  } finally {
    rc.close();
    for (const l of silentLinks) l.close();
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
    await good.close();
  }
});
