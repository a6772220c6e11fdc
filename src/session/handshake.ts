import type { HelloMessage, Message } from "../wire/message.js";
import { ProtocolViolation } from "./errors.js";
import type { MessageTransport } from "./transport.js";

/** Limits in force on a link once both sides agreed. */
export interface Negotiated {
  /** Max bytes of a Request/Response payload and of one channel element. */
  maxPayloadSize: number;
  /** Bytes of credit each channel starts with. */
  initialChannelCredit: number;
}

/**
 * How a link reaches `Negotiated`. Stream and WebSocket links exchange
 * Hello messages; SHM links read the limits from the segment header and
 * exchange nothing.
 */
export interface HandshakeBackend {
  /** Called when the link starts. Returns the limits at once if no exchange is needed. */
  start(transport: MessageTransport): Negotiated | undefined;
  /** Called with each message received before the handshake completed. */
  receive(m: Message): Negotiated;
}

/** Hello V2 exchange (message.hello.*): both send at once, limits are the minimum of both. */
export class HelloHandshake implements HandshakeBackend {
  constructor(private readonly local: Negotiated) {}

  start(transport: MessageTransport): undefined {
    const hello: HelloMessage = {
      type: "Hello",
      version: 2,
      maxPayloadSize: this.local.maxPayloadSize,
      initialChannelCredit: this.local.initialChannelCredit,
    };
    transport.send(hello);
    transport.flush();
    return undefined;
  }

  receive(m: Message): Negotiated {
    if (m.type !== "Hello") {
      throw new ProtocolViolation("message.hello.ordering", `received ${m.type} before Hello`);
    }
    if (m.version !== 2) {
      throw new ProtocolViolation(
        "message.hello.unknown-version",
        m.version === 1 ? "Hello V1 is not supported (this peer speaks wire v2)" : `unknown Hello variant ${m.version - 1}`,
      );
    }
    return {
      maxPayloadSize: Math.min(this.local.maxPayloadSize, m.maxPayloadSize),
      initialChannelCredit: Math.min(this.local.initialChannelCredit, m.initialChannelCredit),
    };
  }
}

/** For transports whose limits are fixed out of band (SHM segment header). */
export class ImplicitHandshake implements HandshakeBackend {
  constructor(private readonly negotiated: Negotiated) {}
  start(): Negotiated {
    return this.negotiated;
  }
  receive(m: Message): Negotiated {
    throw new ProtocolViolation("message.hello.ordering", `unexpected ${m.type} during implicit handshake`);
  }
}
