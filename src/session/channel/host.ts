/**
 * What a bound channel end needs from its connection: limits, the flow
 * backend, and the three channel messages it may send. The connection
 * builds one and hands it to every channel it binds.
 */
import type { FlowControlBackend } from "../flow.js";
import type { PressureThresholds } from "../pressure.js";

/** What a channel needs from its connection. */
export interface ChannelHost {
  readonly connId: number;
  readonly maxPayloadSize: number;
  readonly initialCredit: number;
  readonly flow: FlowControlBackend;
  readonly thresholds: PressureThresholds;
  /** Sends one element; `head`, when given, precedes `payload` (element = head ++ payload). */
  sendData(channelId: number, payload: Uint8Array, head?: Uint8Array): void;
  /** Undefined while the transport can take more, else resolves once it drained below its high-water mark. */
  writable(): Promise<void> | undefined;
  sendClose(channelId: number): void;
  sendReset(channelId: number): void;
  /** The channel is finished locally; forget it (ids stay burned). */
  release(channelId: number, how: "closed" | "reset"): void;
}
