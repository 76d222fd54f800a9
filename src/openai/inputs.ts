import type { InferencePool } from '../inference/pool.ts';
import { apiError, HttpErrorCodes } from '../http/errors.ts';
import type { ModelHost } from '../inference/model-host.ts';
import { isPackageDir, modelDir } from '../packages/discovery.ts';

/**
 * The pool for a request's `model`: the active package, named by its id or its manifest name, or
 * absent. Only the active package is served; another one is activated with POST /v1/models/{id}/activate.
 */
export async function servedPool(models: ModelHost, modelsDir: string, requested: string | undefined): Promise<InferencePool> {
  const pool = models.active;
  if (requested === undefined || requested === models.activeId || requested === pool.name) return pool;
  const dir = modelDir(modelsDir, requested);
  if (dir && (await isPackageDir(dir))) {
    throw apiError(
      HttpErrorCodes.MODEL_NOT_FOUND,
      `model "${requested}" is not the one being served ("${models.activeId}"); omit "model", send "${models.activeId}", or activate it with POST /v1/models/${requested}/activate`,
      { field: 'model' },
    );
  }
  throw apiError(HttpErrorCodes.MODEL_NOT_FOUND, `no model "${requested}"; GET /v1/models lists them ("${models.activeId}" is served)`, { field: 'model' });
}
