/**
 * Who may call the bridge from a browser. An explicit allow-list of origins;
 * the bridge never reflects an arbitrary Origin back. Same-origin pages are
 * allowed (their Origin names the bridge's own host). Requests without an
 * Origin header (curl, servers, load-balancer probes) are not browser
 * cross-origin requests and pass.
 *
 * A browser POST from a page that is not allowed is refused with 403 before
 * anything runs: a "simple" cross-origin request (form or text/plain body)
 * skips the CORS preflight, so refusing only in the preflight would not stop
 * it. WebSocket upgrades are checked the same way (browsers do not apply CORS
 * to WebSockets).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { OUTCOME_HEADER } from "./protocol.js";

export interface CorsOptions {
  /** Exact origins allowed to call from a browser, e.g. `["https://app.example.com"]`. Default: none (same-origin only). */
  origins?: readonly string[];
  /** Send `Access-Control-Allow-Credentials: true` (cookies, HTTP auth) to allowed origins. Default false. */
  allowCredentials?: boolean;
  /** How long browsers may cache a preflight (seconds, default 600). */
  maxAgeSeconds?: number;
}

const ALLOWED_REQUEST_HEADERS = new Set(["content-type", "authorization", "traceparent", "tracestate"]);

export class OriginPolicy {
  private readonly origins: ReadonlySet<string>;
  private readonly credentials: boolean;
  private readonly maxAge: number;

  constructor(o: CorsOptions = {}) {
    for (const origin of o.origins ?? []) {
      if (origin === "*" || origin === "null") throw new TypeError(`cors.origins: "${origin}" is not allowed; list each origin (scheme://host[:port])`);
    }
    this.origins = new Set(o.origins ?? []);
    this.credentials = o.allowCredentials ?? false;
    this.maxAge = o.maxAgeSeconds ?? 600;
  }

  /** "none": no Origin header; "cross": an allowed other origin; "same": this host; "forbidden". */
  classify(req: IncomingMessage): "none" | "same" | "cross" | "forbidden" {
    const origin = req.headers.origin;
    if (origin === undefined) return "none";
    if (this.origins.has(origin)) return "cross";
    let host: string;
    try {
      host = new URL(origin).host;
    } catch {
      return "forbidden";
    }
    return host !== "" && host === req.headers.host ? "same" : "forbidden";
  }

  /** CORS headers for an actual response to an allowed cross-origin request. */
  apply(req: IncomingMessage, res: ServerResponse, exposed: readonly string[]): void {
    res.setHeader("access-control-allow-origin", req.headers.origin!);
    res.setHeader("vary", "Origin");
    if (this.credentials) res.setHeader("access-control-allow-credentials", "true");
    res.setHeader("access-control-expose-headers", [OUTCOME_HEADER, ...exposed].join(", "));
  }

  /** Answers an OPTIONS preflight. */
  preflight(req: IncomingMessage, res: ServerResponse): void {
    const kind = this.classify(req);
    const requested = String(req.headers["access-control-request-headers"] ?? "")
      .split(",")
      .map((h) => h.trim().toLowerCase())
      .filter((h) => h.length > 0);
    const headersOk = requested.every((h) => ALLOWED_REQUEST_HEADERS.has(h) || (h.startsWith("roam-") && h.length > 5));
    const methodOk = (req.headers["access-control-request-method"] ?? "POST") === "POST";
    if (kind !== "cross" && kind !== "same") {
      res.writeHead(403, { "content-type": "application/json", vary: "Origin" });
      res.end(JSON.stringify({ error: "bridge", message: "origin not allowed", rule: "bridge.url.base" }));
      return;
    }
    const h: Record<string, string> = {
      "access-control-allow-origin": req.headers.origin!,
      vary: "Origin",
      "access-control-allow-methods": "POST",
      "access-control-max-age": String(this.maxAge),
    };
    if (requested.length > 0 && headersOk) h["access-control-allow-headers"] = requested.join(", ");
    if (this.credentials) h["access-control-allow-credentials"] = "true";
    res.writeHead(methodOk && headersOk ? 204 : 403, h);
    res.end();
  }
}
