/**
 * The conformance subject (../shared/testbed/README.md, "subject protocol").
 *
 *   PEER_ADDR=host:port            connect there as the link initiator and
 *                                  serve Testbed on connection 0 until the
 *                                  peer closes the link; exit 0
 *   ACCEPT_CONNECTIONS=1           also accept virtual connections (serving
 *                                  Testbed on each); otherwise Reject
 *   SUBJECT_MODE=client
 *   CLIENT_SCENARIO=echo|sum|generate|transform
 *                                  call the peer's Testbed once instead,
 *                                  close the link, exit 0 (non-zero on failure)
 */
import { channel, client, ConnectionClosedError, connectTcp, serve } from "roam-ts/node";
import { testbedImpl } from "./impl.js";
import { Testbed } from "./testbed.js";

function parseAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  if (i <= 0) throw new Error(`PEER_ADDR must be host:port, got ${JSON.stringify(addr)}`);
  const host = addr.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`bad port in PEER_ADDR ${addr}`);
  return { host, port };
}

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`scenario check failed: ${what}`);
}

async function runClient(scenario: string, host: string, port: number): Promise<void> {
  const link = await connectTcp({ host, port, dispatcher: serve(Testbed, testbedImpl) });
  const tb = client(Testbed, link.root);
  const opts = { timeout: 30_000 };
  try {
    switch (scenario) {
      case "echo": {
        const r = await tb.echo("hello from client", opts);
        check(r === "hello from client", `echo returned ${JSON.stringify(r)}`);
        break;
      }
      case "sum": {
        const [tx, rx] = channel<number>();
        const result = tb.sum(rx, opts);
        for (const n of [1, 2, 3, 4, 5]) await tx.send(n);
        await tx.close();
        const total = await result;
        check(total === 15n, `sum returned ${total}`);
        break;
      }
      case "generate": {
        const [tx, rx] = channel<number>();
        const done = tb.generate(5, tx, opts);
        const values = await rx.collect();
        await done;
        check(JSON.stringify(values) === "[0,1,2,3,4]", `generate yielded ${JSON.stringify(values)}`);
        break;
      }
      case "transform": {
        const [inTx, inRx] = channel<string>();
        const [outTx, outRx] = channel<string>();
        const done = tb.transform(inRx, outTx, opts);
        const inputs = ["alpha", "beta", "gamma"];
        const collected = outRx.collect();
        for (const s of inputs) await inTx.send(s);
        await inTx.close();
        await done;
        const outputs = await collected;
        check(JSON.stringify(outputs) === JSON.stringify(inputs), `transform yielded ${JSON.stringify(outputs)}`);
        break;
      }
      default:
        throw new Error(`unknown CLIENT_SCENARIO ${JSON.stringify(scenario)} (expected echo|sum|generate|transform)`);
    }
  } finally {
    link.close();
  }
}

async function runServer(host: string, port: number, acceptConnections: boolean): Promise<void> {
  const dispatcher = serve(Testbed, testbedImpl);
  const link = await connectTcp({
    host,
    port,
    dispatcher,
    acceptConnections: acceptConnections ? () => serve(Testbed, testbedImpl) : undefined,
    onHandlerError: (e, info) => console.error(`subject: handler ${info.method} failed:`, e),
  });
  const reason = await link.closed();
  if (reason instanceof ConnectionClosedError && reason.by === "local" && reason.reason) {
    console.error(`subject: closed the link: ${reason.reason}`);
  }
}

async function main(): Promise<number> {
  const addr = process.env.PEER_ADDR;
  if (!addr) {
    console.error("subject: set PEER_ADDR=host:port (see ../shared/testbed/README.md)");
    return 2;
  }
  const { host, port } = parseAddr(addr);
  if (process.env.SUBJECT_MODE === "client") {
    await runClient(process.env.CLIENT_SCENARIO ?? "echo", host, port);
  } else {
    await runServer(host, port, process.env.ACCEPT_CONNECTIONS === "1");
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error("subject failed:", e);
    process.exitCode = 1;
  },
);
