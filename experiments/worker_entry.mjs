// Entry of a sweep worker thread. Workers start without the parent's loader flags, so this file is
// plain JavaScript: it registers tsx's ESM loader in this thread (module.register, Node >= 20.6)
// and then loads the TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
