import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The package root (where package.json is), whatever the current directory. */
export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Default folder of the baselines that `regress` checks. */
export const BASELINES_DIR = join(PACKAGE_ROOT, 'experiments', 'baselines');
