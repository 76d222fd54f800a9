/**
 * The inference layer's own refusal: it knows it cannot take more work, not how HTTP says so.
 * src/plugins/error-handler.ts maps it to 503 PSA_OVERLOADED with Retry-After.
 */
export class InferenceOverloadedError extends Error {
  override readonly name = 'InferenceOverloadedError';
  constructor(
    message: string,
    /** Seconds after which the work in front is expected to be done. */
    readonly retryAfterS: number,
    readonly details: Record<string, unknown>,
  ) {
    super(message);
  }
}

/**
 * The pool is closing (its model is being replaced, or the server is shutting down): the work
 * was not started and can be sent again at once. Mapped to 503 PSA_NOT_READY with Retry-After.
 */
export class InferenceNotReadyError extends Error {
  override readonly name = 'InferenceNotReadyError';
  constructor(
    message: string,
    readonly retryAfterS = 1,
  ) {
    super(message);
  }
}
