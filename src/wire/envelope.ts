/**
 * The Response envelope: every Response payload is postcard
 * `Result<T, RoamError<E>>`, whatever the method. These facts are the same
 * for the session, the SHM transport, proxies and bridges, so they live here
 * rather than with the typed method descriptors.
 */

/** Outer `Result` discriminant: the call returned a value. */
export const RESULT_OK = 0;
/** Outer `Result` discriminant: the payload continues with a `RoamError`. */
export const RESULT_ERR = 1;

/** `RoamError` discriminants (the byte after `RESULT_ERR`). */
export const ROAM_ERROR_USER = 0;
export const ROAM_ERROR_UNKNOWN_METHOD = 1;
export const ROAM_ERROR_INVALID_PAYLOAD = 2;
export const ROAM_ERROR_CANCELLED = 3;

/** Response payloads for protocol errors, identical for every method. */
export const RESPONSE_UNKNOWN_METHOD = Uint8Array.of(RESULT_ERR, ROAM_ERROR_UNKNOWN_METHOD);
export const RESPONSE_INVALID_PAYLOAD = Uint8Array.of(RESULT_ERR, ROAM_ERROR_INVALID_PAYLOAD);
export const RESPONSE_CANCELLED = Uint8Array.of(RESULT_ERR, ROAM_ERROR_CANCELLED);

/**
 * Response metadata key carrying a human-readable reason when a call is
 * answered Cancelled because its handler threw (or the call was refused).
 */
export const HANDLER_ERROR_KEY = "roam-error";
