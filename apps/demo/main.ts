/**
 * The guided tour of roam (`npm start`): each section shows one thing roam
 * does, says in one line why it matters, names the file to read, runs it and
 * checks the outcome (✓/✗). Exits 0 when every check passed, 1 otherwise.
 * Fits in 100 columns; `npm start | head` and Ctrl-C leave nothing behind.
 *
 * To add a section: write apps/demo/<topic>.ts exporting a `TourSection`
 * (see tour.ts) and add it to SECTIONS below.
 */
import { bridgeTourSection } from "./bridge.js";
import { pluginHostSection } from "./plugin-host.js";
import { reconnectSection } from "./reconnect.js";
import { rpcSections } from "./rpc.js";
import { c, runTour, type TourSection } from "./tour.js";

const SECTIONS: TourSection[] = [
  ...rpcSections,
  pluginHostSection,
  reconnectSection,
  bridgeTourSection,
];

const intro = [
  c.bold("roam, a guided tour"),
  "roam is an RPC protocol: typed calls, streams with flow control, many connections on one",
  "socket, over TCP, Unix sockets, WebSocket and shared memory. Servers and clients below run in",
  "this process (plugins in child processes). Code: README.md, then the source named per section.",
];

runTour(intro, SECTIONS).then(
  (failures) => {
    process.exitCode = failures === 0 ? 0 : 1;
  },
  (e) => {
    console.error(c.red("the tour failed:"), e);
    process.exitCode = 1;
  },
);
