/**
 * A call whose arguments fail to encode after some of its channels were bound
 * is never sent: its channels end with it and leave the connection's registry
 * (they used to stay there for the connection's lifetime, one leak per failed call).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { t } from "../src/schema/index.js";
import { arg, defineService, method } from "../src/service/define.js";
import { channel } from "../src/session/channel/pair.js";
import { EncodeFailedError } from "../src/session/errors.js";
import { client, serve } from "../src/session/serve.js";
import { connectTcp, listenTcp } from "../src/transport/node.js";

const Svc = defineService("Unsent", {
  /** The channel comes first, so it is bound before `small` fails to encode. */
  take: method([arg("out", t.tx(t.u32)), arg("small", t.u8)], t.unit),
});

test("a call whose arguments fail to encode leaves none of its channels behind", { timeout: 20_000 }, async () => {
  const server = await listenTcp({ port: 0, host: "127.0.0.1", dispatcher: serve(Svc, { take: async () => {} }) });
  const link = await connectTcp({ port: server.port!, host: "127.0.0.1" });
  try {
    const api = client(Svc, link.root);
    for (let i = 0; i < 5; i++) {
      const [tx, rx] = channel<number>();
      const err = await api.take(tx, 300).then(() => null, (e: unknown) => e);
      assert.ok(err instanceof EncodeFailedError, String(err));
      await assert.rejects(rx.next(), "the channel ended with the unsent call");
    }
    const open = link.diagnostics().connections.flatMap((c) => c.channels);
    assert.deepEqual(open, [], "no channel of an unsent call stays registered");
  } finally {
    link.close();
    await server.close();
  }
});
