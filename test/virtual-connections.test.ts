/**
 * Virtual connections (core.conn.*): the application-driven accept path
 * (`incomingConnections`, `accept`, `reject`, leaving the loop, the backlog),
 * Connect/Accept metadata reaching both ends, and the end of one connection
 * (a peer Goodbye; our own violation Goodbye) closing exactly that
 * connection and nothing else.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { t } from "../src/schema/index.js";
import { arg, defineService, method } from "../src/service/define.js";
import type { Connection } from "../src/session/connection.js";
import { ConnectionClosedError, ConnectionRejectedError, type RoamError } from "../src/session/errors.js";
import type { Link } from "../src/session/link.js";
import { client, serve, ServiceDispatcher } from "../src/session/serve.js";
import { connectTcp, listenTcp, type RoamServer, type ServerOptions } from "../src/transport/node.js";
import { Writer } from "../src/codec/writer.js";
import type { Metadata } from "../src/wire/message.js";
import { Testbed } from "../apps/testbed/testbed.js";
import { testbedImpl } from "../apps/testbed/impl.js";
import { rawConnect, type RawPeer } from "./helpers/raw-peer.js";
import { within } from "./helpers/testbed-server.js";

/** Tells the caller what its connection carries. */
const Who = defineService("Who", {
  whoami: method([arg("key", t.string)], t.option(t.string)),
});
const whoDispatcher = () =>
  new ServiceDispatcher().add(Testbed, testbedImpl).add(Who, {
    whoami: (key, ctx) => {
      const v = ctx.connection.metadata.find(([k]) => k === key)?.[1];
      return typeof v === "string" ? `conn ${ctx.connection.connId}: ${v}` : null;
    },
  });

/** A server whose links are handed to the test (to drive `incomingConnections`). */
async function serverWithLinks(o: ServerOptions = {}): Promise<{ server: RoamServer; nextLink(): Promise<Link> }> {
  const waiting: ((l: Link) => void)[] = [];
  const ready: Link[] = [];
  const server = await listenTcp({
    port: 0,
    dispatcher: whoDispatcher(),
    ...o,
    onLink: (l) => {
      const w = waiting.shift();
      if (w) w(l);
      else ready.push(l);
    },
  });
  return {
    server,
    nextLink: () => {
      const l = ready.shift();
      return l ? Promise.resolve(l) : new Promise((r) => waiting.push(r));
    },
  };
}

const closedWith = (c: Connection) => new Promise<RoamError>((r) => c.onClose(r));

describe("accepting virtual connections by hand", () => {
  test("incomingConnections yields each Connect with its metadata; accept serves it, both ends see the metadata", async () => {
    const { server, nextLink } = await serverWithLinks();
    try {
      const link = await connectTcp({ port: server.port! });
      const serverLink = await within(nextLink(), 5000, "server link");
      const incoming = serverLink.incomingConnections();
      const md: Metadata = [
        ["tenant", "acme"],
        ["token", Uint8Array.of(1, 2, 3)],
        ["quota", 5n],
      ];
      const opening = link.connect({ metadata: md });
      const next = await within(incoming.next(), 5000, "incoming Connect");
      assert.equal(next.done, false);
      const inc = next.value!;
      assert.deepEqual(inc.metadata, md);
      const conn = inc.accept(whoDispatcher(), [["welcome", "yes"]]);
      assert.deepEqual(conn.metadata, md, "the accepted connection keeps the Connect metadata");
      assert.throws(() => inc.accept(null), /already accepted or rejected/);
      inc.reject("too late"); // no effect after accept
      const vc = await within(opening, 5000, "Accept");
      assert.notEqual(vc.connId, 0);
      assert.equal(vc.connId, conn.connId);
      assert.deepEqual(vc.metadata, [["welcome", "yes"]], "the opener sees the Accept metadata");
      // The handler on the virtual connection sees the Connect metadata.
      assert.equal(await client(Who, vc).whoami("tenant"), `conn ${vc.connId}: acme`);
      assert.equal(await client(Who, link.root).whoami("tenant"), null, "connection 0 carries none");
      assert.equal(serverLink.connectionCount, 2);

      // Reject with a reason and metadata.
      const refused = link.connect({ metadata: [["tenant", "nobody"]] });
      const inc2 = (await within(incoming.next(), 5000, "second Connect")).value!;
      assert.deepEqual(inc2.metadata, [["tenant", "nobody"]]);
      inc2.reject("unknown tenant", [["retry-after", 30n]]);
      const e = await refused.catch((x: unknown) => x);
      assert.ok(e instanceof ConnectionRejectedError, String(e));
      assert.equal(e.reason, "unknown tenant");
      assert.deepEqual(e.metadata, [["retry-after", 30n]]);
      assert.equal(serverLink.connectionCount, 2, "a rejected Connect leaves no connection behind");

      // Leaving the loop stops listening: the next Connect is rejected at once.
      await incoming.return!();
      const late = await link.connect().catch((x: unknown) => x);
      assert.ok(late instanceof ConnectionRejectedError);
      assert.equal(late.reason, "not listening");
      assert.equal(await client(Testbed, vc).echo("still served"), "still served");
      link.close();
    } finally {
      await server.close();
    }
  });

  test("Connects beyond the accept backlog are rejected; a waiting iterator ends when the link closes", async () => {
    const { server, nextLink } = await serverWithLinks({ acceptBacklog: 2 });
    try {
      const link = await connectTcp({ port: server.port! });
      const serverLink = await nextLink();
      const incoming = serverLink.incomingConnections();
      const opens = [link.connect(), link.connect(), link.connect()].map((p) => p.then((c) => c, (x: unknown) => x));
      const third = await within(opens[2]!, 5000, "third Connect answered");
      assert.ok(third instanceof ConnectionRejectedError);
      assert.equal(third.reason, "backlog full");
      const a = (await incoming.next()).value!;
      const b = (await incoming.next()).value!;
      a.accept(null);
      b.reject("no");
      assert.ok((await opens[0]) instanceof Object);
      assert.ok((await opens[1]) instanceof ConnectionRejectedError);
      const waiting = incoming.next();
      link.close();
      assert.deepEqual(await within(waiting, 5000, "iterator end"), { value: undefined, done: true });
    } finally {
      await server.close();
    }
  });
});

describe("the end of one virtual connection (raw peer)", () => {
  function echoPayload(s: string): Uint8Array {
    const w = new Writer();
    t.tuple(t.string).encode(w, [s]);
    return w.finish();
  }
  async function setup(): Promise<{ server: RoamServer; p: RawPeer; serverLink: Link; accept(md?: Metadata): Promise<{ connId: number; conn: Connection }> }> {
    const { server, nextLink } = await serverWithLinks();
    const p = await rawConnect(server.port!);
    await p.next();
    p.hello();
    const serverLink = await within(nextLink(), 5000, "server link");
    const incoming = serverLink.incomingConnections();
    let rid = 1;
    return {
      server,
      p,
      serverLink,
      accept: async (md = []) => {
        p.send({ type: "Connect", requestId: rid++, metadata: md });
        const inc = (await within(incoming.next(), 5000, "Connect")).value!;
        const conn = inc.accept(whoDispatcher());
        const a = await p.expect("Accept");
        return { connId: a.connId, conn };
      },
    };
  }

  test("a peer Goodbye on a virtual connection closes that connection (by the remote, with its reason) and only it", async () => {
    const { server, p, serverLink, accept } = await setup();
    try {
      const a = await accept([["n", "a"]]);
      const b = await accept([["n", "b"]]);
      assert.equal(serverLink.connectionCount, 3);
      const aClosed = closedWith(a.conn);
      p.send({ type: "Goodbye", connId: a.connId, reason: "done with a" });
      const e = await within(aClosed, 5000, "connection a closed");
      assert.ok(e instanceof ConnectionClosedError);
      assert.equal(e.by, "remote");
      assert.equal(e.reason, "done with a");
      assert.equal(a.conn.isClosed, true);
      assert.equal(b.conn.isClosed, false);
      assert.equal(serverLink.connectionCount, 2);
      // A Request still crossing the Goodbye is dropped, not served; b and 0 keep working.
      p.send({ type: "Request", connId: a.connId, requestId: 1, methodId: Testbed.methods.echo.id, metadata: [], channels: [], payload: echoPayload("a") });
      p.send({ type: "Request", connId: b.connId, requestId: 1, methodId: Testbed.methods.echo.id, metadata: [], channels: [], payload: echoPayload("b") });
      p.send({ type: "Request", connId: 0, requestId: 1, methodId: Testbed.methods.echo.id, metadata: [], channels: [], payload: echoPayload("0") });
      const r1 = await p.expect("Response");
      const r2 = await p.expect("Response");
      assert.deepEqual([r1.connId, r2.connId], [b.connId, 0], "no Response on the closed connection");
      p.destroy();
    } finally {
      await server.close();
    }
  });

  test("a violation on a virtual connection: Goodbye on it naming the rule, the connection is gone, the link stays", async () => {
    const { server, p, serverLink, accept } = await setup();
    try {
      const a = await accept();
      const aClosed = closedWith(a.conn);
      p.send({ type: "Data", connId: a.connId, channelId: 77, payload: Uint8Array.of(1) });
      const g = await p.expect("Goodbye");
      assert.equal(g.connId, a.connId);
      assert.ok(g.reason.startsWith("channeling.unknown"), g.reason);
      const e = await within(aClosed, 5000, "connection closed after its violation");
      assert.ok(e instanceof ConnectionClosedError);
      assert.equal(e.by, "local");
      assert.equal(serverLink.connectionCount, 1);
      // Anything more on it is not served (it crossed our Goodbye), the link goes on.
      p.send({ type: "Request", connId: a.connId, requestId: 2, methodId: Testbed.methods.echo.id, metadata: [], channels: [], payload: echoPayload("a") });
      p.send({ type: "Request", connId: 0, requestId: 2, methodId: Testbed.methods.echo.id, metadata: [], channels: [], payload: echoPayload("0") });
      const r = await p.expect("Response");
      assert.equal(r.connId, 0, "the Request on the closed connection got no Response");
      assert.equal(serverLink.isClosed, false);
      p.destroy();
    } finally {
      await server.close();
    }
  });
});
