/** Bridge-level failures (bridge.response.bridge-error): an HTTP status and a JSON body. */
export class BridgeHttpError extends Error {
  override readonly name = "BridgeHttpError";
  constructor(
    readonly status: number,
    /** The spec rule the failure is about (also in the body as "rule"). */
    readonly rule: string,
    message: string,
  ) {
    super(message);
  }
  /** `{"error":"bridge","message":…,"rule":…}` */
  body(): string {
    return JSON.stringify({ error: "bridge", message: this.message, rule: this.rule });
  }
}
