import { join } from 'node:path';
import { writeFileAtomic } from '../atomic_write.ts';
import { out, type Command } from '../command.ts';
import { prepareOutputDir } from '../output_paths.ts';
import { writeReport } from '../outputs.ts';
import { readResultSet } from '../results.ts';
import { renderSummaryMarkdown } from '../summary_md.ts';

export const report: Command = {
  name: 'report',
  summary: 'Redraw report.html and summary.md from DIR/results.json. Useful after a merge or with a newer cvmsim.',
  positional: { name: 'DIR', min: 1, max: 1 },
  options: {},
  async run(args) {
    const dir = args.positional[0]!;
    const rs = readResultSet(dir, 'DIR');
    prepareOutputDir(dir, 'DIR');
    const summary = join(dir, 'summary.md');
    writeFileAtomic(summary, renderSummaryMarkdown(rs));
    const path = writeReport(dir, rs);
    out(`wrote ${path}\n      ${summary}`);
    return 0;
  },
};
