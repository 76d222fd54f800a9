/**
 * The shadow run's own refusals; src/plugins/error-handler.ts maps them to 409
 * PSA_SHADOW_RUNNING and 404 PSA_SHADOW_NOT_FOUND.
 */
export class ShadowRunningError extends Error {
  override readonly name = 'ShadowRunningError';
  constructor(
    message: string,
    readonly details: Record<string, unknown>,
  ) {
    super(message);
  }
}

export class ShadowNotFoundError extends Error {
  override readonly name = 'ShadowNotFoundError';
  readonly details = { field: 'id' };
}
