/**
 * The demo's reconnect section: a client loop keeps paying through a
 * ReconnectingClient while the server drops every link mid-call and comes
 * back on the same port. Each call carries a roam-nonce; the server's dedup
 * layer (in-memory store) answers the retries, so every payment runs exactly
 * once. A tour section (see tour.ts).
 */
import {
  arg,
  client,
  dedup,
  defineService,
  listenTcp,
  method,
  type ReconnectEvent,
  ReconnectingClient,
  type RoamServer,
  serve,
  t,
  tcpConnector,
} from "roam-ts/node";
import { fmtMs, type Row, type Tour, type TourSection } from "./tour.js";

const Payments = defineService("Payments", {
  pay: method([arg("invoice", t.u32), arg("cents", t.u32)], t.string),
});

const CALLS = 20;
/** The call during which the server restarts. */
const RESTART_AT = 8;
const DOWN_MS = 300;

export const reconnectSection: TourSection = {
  title: "reconnecting client",
  what: "The server restarts under a running client loop; every call still completes, exactly once.",
  source: "apps/demo/reconnect.ts, src/reconnect/client.ts, src/nonce/dedup.ts",
  terms: {
    nonce: "16 random bytes naming one logical call; a retry reuses it, so the server can answer it from its cache",
    dedup: "the server layer that runs each nonce once and replays the response to retries",
  },
  run: (tour) => reconnectTour(tour),
};

async function reconnectTour(tour: Tour): Promise<Row[]> {
  const executions = new Map<number, number>();
  let restartNow: (() => void) | null = null;
  const dispatcher = dedup(
    serve(Payments, {
      pay: async (invoice, cents) => {
        executions.set(invoice, (executions.get(invoice) ?? 0) + 1);
        if (invoice === RESTART_AT) restartNow?.(); // the server goes down while this call runs
        await new Promise((r) => setTimeout(r, 20));
        return `invoice ${invoice}: ${cents} cents paid`;
      },
    }),
  );
  let server: RoamServer | null = await listenTcp({ port: 0, dispatcher });
  const port = server.port!;
  let listeningAgainAt = 0;
  let restarted: Promise<void> = Promise.resolve();
  restartNow = () => {
    restartNow = null;
    restarted = (async () => {
      const s = server!;
      server = null;
      for (const l of [...s.links]) l.transport.close(); // drop every link, no Goodbye
      await s.close();
      await new Promise((r) => setTimeout(r, DOWN_MS));
      server = await listenTcp({ port, dispatcher });
      listeningAgainAt = performance.now();
    })();
  };

  const events: ReconnectEvent[] = [];
  const rc = new ReconnectingClient(tcpConnector({ port }), {
    policy: { maxAttempts: 50, initialBackoffMs: 50, maxBackoffMs: 100 },
    onEvent: (e) => events.push(e),
  });
  const payments = client(Payments, rc);
  const results: string[] = [];
  let firstSuccessAfterRestart = 0;
  const rows: [boolean, string, string][] = [];
  try {
    for (let i = 1; i <= CALLS; i++) {
      results.push(await payments.pay(i, i * 100, { timeout: 10_000 }));
      if (listeningAgainAt > 0 && firstSuccessAfterRestart === 0) firstSuccessAfterRestart = performance.now();
    }
    await restarted;
  } catch (e) {
    rows.push([false, "client loop", e instanceof Error ? `${e.name}: ${e.message}` : String(e)]);
  } finally {
    rc.close();
    await server?.close();
  }

  const expected = Array.from({ length: CALLS }, (_, k) => `invoice ${k + 1}: ${(k + 1) * 100} cents paid`);
  const allOk = results.length === CALLS && results.every((r, k) => r === expected[k]);
  rows.push([allOk, `${CALLS} calls in a loop`, `${results.length}/${CALLS} answered correctly`]);
  const lost = events.find((e) => e.type === "disconnected");
  rows.push([
    lost !== undefined,
    `server drops every link during call ${RESTART_AT}, down ${DOWN_MS} ms`,
    lost ? `client saw: ${(lost as { cause: Error }).cause.message.replace(/; open a new connection.*$/, "")}` : "no disconnect seen",
  ]);
  const attempts = events.filter((e) => e.type === "attempt-failed").length;
  rows.push([rc.connects === 2, "one reconnect", `${attempts} refused attempt(s) while down, then connected (links made: ${rc.connects})`]);
  const once = [...Array(CALLS).keys()].every((k) => executions.get(k + 1) === 1);
  rows.push([once, "each payment ran exactly once", once ? `executions per invoice: all 1 (call ${RESTART_AT} was retried with its nonce: ${dispatcher.stats.replayed} answered from the dedup store)` : JSON.stringify(Object.fromEntries(executions))]);
  const gap = firstSuccessAfterRestart - listeningAgainAt;
  rows.push([firstSuccessAfterRestart > 0, "restart → first successful call", `${gap.toFixed(0)} ms after the server listened again (backoff ≤ 100 ms)`]);

  tour.note(`restart → first successful call: ${fmtMs(gap)} (from the restarted server listening to the retried call's answer)`);
  return rows.map(([ok, what, result]) => ({ ok, where: "tcp", what, result }));
}
