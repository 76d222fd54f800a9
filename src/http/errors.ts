import { DatasetErrorCodes, type DatasetErrorCode } from '../datasets/errors.ts';
import { type PsaError, PsaErrorCodes, type PsaErrorCode } from '../psa/errors.ts';

/** HTTP-only error codes; the runtime's codes are in src/psa/errors.ts. */
export const HttpErrorCodes = {
  BAD_REQUEST: 'PSA_BAD_REQUEST',
  MALFORMED_JSON: 'PSA_MALFORMED_JSON',
  MISSING_IMAGE: 'PSA_MISSING_IMAGE',
  TOO_MANY_ITEMS: 'PSA_TOO_MANY_ITEMS',
  PAYLOAD_TOO_LARGE: 'PSA_PAYLOAD_TOO_LARGE',
  UNSUPPORTED_MEDIA_TYPE: 'PSA_UNSUPPORTED_MEDIA_TYPE',
  REMOTE_IMAGE_REFUSED: 'PSA_REMOTE_IMAGE_REFUSED',
  UNAUTHORIZED: 'PSA_UNAUTHORIZED',
  FORBIDDEN: 'PSA_FORBIDDEN',
  NOT_FOUND: 'PSA_NOT_FOUND',
  OVERLOADED: 'PSA_OVERLOADED',
  NOT_READY: 'PSA_NOT_READY',
  INTERNAL: 'PSA_INTERNAL',
  QUEUE_UNAVAILABLE: 'PSA_QUEUE_UNAVAILABLE',
  MODEL_NOT_FOUND: 'PSA_MODEL_NOT_FOUND',
  JOB_NOT_FOUND: 'PSA_JOB_NOT_FOUND',
  GPUS_UNAVAILABLE: 'PSA_GPUS_UNAVAILABLE',
  TOO_MANY_REQUESTS: 'PSA_TOO_MANY_REQUESTS',
  REQUEST_TIMEOUT: 'PSA_REQUEST_TIMEOUT',
  URI_TOO_LONG: 'PSA_URI_TOO_LONG',
  HEADERS_TOO_LARGE: 'PSA_HEADERS_TOO_LARGE',
  SHADOW_RUNNING: 'PSA_SHADOW_RUNNING',
  SHADOW_NOT_FOUND: 'PSA_SHADOW_NOT_FOUND',
  UNKNOWN_POLICY: 'PSA_UNKNOWN_POLICY',
  POLICY_NOT_FOUND: 'PSA_POLICY_NOT_FOUND',
  POLICY_EXISTS: 'PSA_POLICY_EXISTS',
  POLICY_IN_USE: 'PSA_POLICY_IN_USE',
  CALIBRATION_TARGET_UNREACHABLE: 'PSA_CALIBRATION_TARGET_UNREACHABLE',
  CALIBRATION_TIMEOUT: 'PSA_CALIBRATION_TIMEOUT',
  FEEDBACK_RETENTION_OFF: 'PSA_FEEDBACK_RETENTION_OFF',
  FEEDBACK_REQUEST_NOT_FOUND: 'PSA_FEEDBACK_REQUEST_NOT_FOUND',
  FEEDBACK_NOT_FOUND: 'PSA_FEEDBACK_NOT_FOUND',
  FEEDBACK_INVALID: 'PSA_FEEDBACK_INVALID',
  FEEDBACK_EMPTY: 'PSA_FEEDBACK_EMPTY',
} as const;

export type HttpErrorCode = (typeof HttpErrorCodes)[keyof typeof HttpErrorCodes];
export type ErrorCode = PsaErrorCode | HttpErrorCode | DatasetErrorCode;

/** The one table of error codes and HTTP statuses. */
export const ERROR_STATUS: Record<ErrorCode, number> = {
  [HttpErrorCodes.BAD_REQUEST]: 400,
  [HttpErrorCodes.MALFORMED_JSON]: 400,
  [HttpErrorCodes.MISSING_IMAGE]: 400,
  [HttpErrorCodes.TOO_MANY_ITEMS]: 400,
  [HttpErrorCodes.REMOTE_IMAGE_REFUSED]: 400,
  [HttpErrorCodes.PAYLOAD_TOO_LARGE]: 413,
  [HttpErrorCodes.UNSUPPORTED_MEDIA_TYPE]: 415,
  [HttpErrorCodes.UNAUTHORIZED]: 401,
  [HttpErrorCodes.FORBIDDEN]: 403,
  [HttpErrorCodes.NOT_FOUND]: 404,
  [HttpErrorCodes.OVERLOADED]: 503,
  [HttpErrorCodes.NOT_READY]: 503,
  [HttpErrorCodes.INTERNAL]: 500,
  [HttpErrorCodes.QUEUE_UNAVAILABLE]: 503,
  [HttpErrorCodes.MODEL_NOT_FOUND]: 404,
  [HttpErrorCodes.JOB_NOT_FOUND]: 404,
  [HttpErrorCodes.GPUS_UNAVAILABLE]: 422,
  [HttpErrorCodes.TOO_MANY_REQUESTS]: 429,
  [HttpErrorCodes.REQUEST_TIMEOUT]: 408,
  [HttpErrorCodes.URI_TOO_LONG]: 414,
  [HttpErrorCodes.HEADERS_TOO_LARGE]: 431,
  [HttpErrorCodes.SHADOW_RUNNING]: 409,
  [HttpErrorCodes.SHADOW_NOT_FOUND]: 404,
  [HttpErrorCodes.UNKNOWN_POLICY]: 400,
  [HttpErrorCodes.POLICY_NOT_FOUND]: 404,
  [HttpErrorCodes.POLICY_EXISTS]: 409,
  [HttpErrorCodes.POLICY_IN_USE]: 409,
  [HttpErrorCodes.CALIBRATION_TARGET_UNREACHABLE]: 409,
  [HttpErrorCodes.CALIBRATION_TIMEOUT]: 504,
  [HttpErrorCodes.FEEDBACK_RETENTION_OFF]: 409,
  [HttpErrorCodes.FEEDBACK_REQUEST_NOT_FOUND]: 404,
  [HttpErrorCodes.FEEDBACK_NOT_FOUND]: 404,
  [HttpErrorCodes.FEEDBACK_INVALID]: 422,
  [HttpErrorCodes.FEEDBACK_EMPTY]: 422,
  [DatasetErrorCodes.INSUFFICIENT_STORAGE]: 507,
  [DatasetErrorCodes.DATASET_INVALID]: 422,
  [DatasetErrorCodes.ARCHIVE_INVALID]: 400,
  [DatasetErrorCodes.ARCHIVE_UNSAFE]: 400,
  [DatasetErrorCodes.ARCHIVE_TOO_LARGE]: 413,
  [DatasetErrorCodes.DATASET_NOT_FOUND]: 404,
  [PsaErrorCodes.INVALID_IMAGE]: 400,
  [PsaErrorCodes.EMPTY_IMAGE]: 400,
  [PsaErrorCodes.IMAGE_TOO_LARGE]: 413,
  [PsaErrorCodes.PROMPT_TOO_LONG]: 400,
  [PsaErrorCodes.INVALID_LABEL]: 400,
  [PsaErrorCodes.INVALID_GENERATION_OPTION]: 400,
  [PsaErrorCodes.ABORTED]: 499,
  [PsaErrorCodes.PACKAGE_NOT_FOUND]: 404,
  [PsaErrorCodes.PACKAGE_FILE_MISSING]: 422,
  [PsaErrorCodes.PACKAGE_MANIFEST_INVALID]: 422,
  [PsaErrorCodes.PACKAGE_CHECKSUM_MISMATCH]: 422,
  [PsaErrorCodes.PACKAGE_ONNX_INVALID]: 422,
  [PsaErrorCodes.PACKAGE_TENSOR_MISMATCH]: 422,
  [PsaErrorCodes.PACKAGE_CONFIG_INVALID]: 422,
  [PsaErrorCodes.EXECUTION_PROVIDER_UNAVAILABLE]: 500,
  [PsaErrorCodes.INFERENCE_FAILED]: 500,
};

/** An error a client gets as `{error: {code, message, details}}` with the table's status. */
export class ApiError extends Error {
  readonly statusCode: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'ApiError';
    this.statusCode = ERROR_STATUS[code];
  }

  static from(err: PsaError | { code: string; message: string; details?: Record<string, unknown> }): ApiError {
    const code = (err.code in ERROR_STATUS ? err.code : HttpErrorCodes.INTERNAL) as ErrorCode;
    return new ApiError(code, err.message, err.details);
  }
}

export const apiError = (code: ErrorCode, message: string, details?: Record<string, unknown>) => new ApiError(code, message, details);
