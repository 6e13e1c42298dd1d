import { readFileSync } from 'node:fs';

/** cvmsim's version (package.json), which every trace's resources carry as service.version. */
export const CVMSIM_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
