import { loadCatalog } from '../catalog.ts';
import { out, type Command } from '../command.ts';
import type { Tolerance } from '../experiment.ts';
import { textTable } from '../format.ts';
import { describeAllowed } from '../params.ts';

export const describe: Command = {
  name: 'describe',
  summary: "Show an experiment's question, parameters and metrics. Parameters come with type, default, the source of the default (keys of docs/sources.md), unit and allowed values; metrics with unit and regression tolerance.",
  positional: { name: '<experiment>', min: 1, max: 1 },
  options: {},
  async run(args) {
    const exp = (await loadCatalog()).get(args.positional[0]!);
    out(`${exp.name}\n\n${exp.question}\n`);
    out('parameters (override with --set name=value):');
    const params = Object.entries(exp.params);
    // The source column appears when any default is sourced: keys of docs/sources.md, '-' for a
    // setting of the experiment (a size, a count, a choice between models).
    const sourced = params.some(([, p]) => p.source !== undefined);
    out(textTable(sourced ? ['name', 'default', 'source', 'allowed', 'description'] : ['name', 'default', 'allowed', 'description'], params.map(([k, p]) => [
      k, String(p.default), ...(sourced ? [p.source ?? '-'] : []), describeAllowed(p), p.description,
    ])));
    if (sourced) out('source: keys of docs/sources.md; - : a setting of the experiment, not a sourced value');
    out('\nmetrics:');
    out(textTable(['name', 'unit', 'tolerance', 'description'], Object.entries(exp.metrics).map(([k, m]) => [
      k, m.unit, toleranceText(m.tolerance), m.description,
    ])));
    return 0;
  },
};

export function toleranceText(t: Tolerance): string {
  switch (t.kind) {
    case 'exact':
      return 'exact';
    case 'relative':
      return `±${Number((t.value * 100).toPrecision(6))}%`;
    case 'absolute':
      return `±${t.value}`;
  }
}
