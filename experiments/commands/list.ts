import { loadCatalog } from '../catalog.ts';
import { out, type Command } from '../command.ts';
import { textTable } from '../format.ts';

export const list: Command = {
  name: 'list',
  summary: 'List the registered experiments and the question each answers.',
  positional: { name: '', min: 0, max: 0 },
  options: {},
  async run() {
    const catalog = await loadCatalog();
    if (catalog.all.length === 0) {
      out('no experiment is registered (experiments/registry.ts)');
      return 0;
    }
    out(textTable(['experiment', 'question'], catalog.all.map((e) => [e.name, e.question])));
    return 0;
  },
};
