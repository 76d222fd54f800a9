/**
 * Every failure the runtime reports carries a stable code. The HTTP layer maps codes to statuses;
 * the runtime itself never knows about HTTP.
 */
export const PsaErrorCodes = {
  // model package
  PACKAGE_NOT_FOUND: 'PSA_PACKAGE_NOT_FOUND',
  PACKAGE_FILE_MISSING: 'PSA_PACKAGE_FILE_MISSING',
  PACKAGE_MANIFEST_INVALID: 'PSA_PACKAGE_MANIFEST_INVALID',
  PACKAGE_CHECKSUM_MISMATCH: 'PSA_PACKAGE_CHECKSUM_MISMATCH',
  PACKAGE_ONNX_INVALID: 'PSA_PACKAGE_ONNX_INVALID',
  PACKAGE_TENSOR_MISMATCH: 'PSA_PACKAGE_TENSOR_MISMATCH',
  PACKAGE_CONFIG_INVALID: 'PSA_PACKAGE_CONFIG_INVALID',
  // execution
  EXECUTION_PROVIDER_UNAVAILABLE: 'PSA_EXECUTION_PROVIDER_UNAVAILABLE',
  INFERENCE_FAILED: 'PSA_INFERENCE_FAILED',
  // input
  INVALID_IMAGE: 'PSA_INVALID_IMAGE',
  EMPTY_IMAGE: 'PSA_EMPTY_IMAGE',
  IMAGE_TOO_LARGE: 'PSA_IMAGE_TOO_LARGE',
  PROMPT_TOO_LONG: 'PSA_PROMPT_TOO_LONG',
  INVALID_LABEL: 'PSA_INVALID_LABEL',
  INVALID_GENERATION_OPTION: 'PSA_INVALID_GENERATION_OPTION',
  ABORTED: 'PSA_ABORTED',
} as const;

export type PsaErrorCode = (typeof PsaErrorCodes)[keyof typeof PsaErrorCodes];

export class PsaError extends Error {
  readonly code: PsaErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: PsaErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PsaError';
    this.code = code;
    this.details = options?.details;
  }
}

export function isPsaError(err: unknown, code?: PsaErrorCode): err is PsaError {
  return err instanceof PsaError && (code === undefined || err.code === code);
}
