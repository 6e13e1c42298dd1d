/**
 * The `cvmsim` command (bin/cvmsim.js loads this through tsx; `npm start` runs `tsx
 * experiments/cli.ts suite`). See main.ts for the commands.
 */
import { main } from './main.ts';

process.exitCode = await main(process.argv.slice(2));
