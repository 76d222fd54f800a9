/** The embedded default package: its directory and the name it serves under (psa.json "name"). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const DEFAULT_MODEL_DIR = fileURLToPath(new URL('../../models/default', import.meta.url));
export const DEFAULT_MODEL_NAME: string = JSON.parse(readFileSync(`${DEFAULT_MODEL_DIR}/psa.json`, 'utf8')).name;
