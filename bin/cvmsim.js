#!/usr/bin/env node
// The cvmsim command: registers tsx's ESM loader (module.register, Node >= 20.6) so the
// TypeScript CLI runs without a build step, then hands over to experiments/cli.ts.
import { register } from 'tsx/esm/api';

register();
await import(new URL('../experiments/cli.ts', import.meta.url).href);
