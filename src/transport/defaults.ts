// Kept for existing imports: the limits live in ./limits.ts (one resolver for every transport).
export { DEFAULT_LIMITS, frameLimitFor } from "./limits.js";
