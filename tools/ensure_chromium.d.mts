// Types for tools/ensure_chromium.mjs (a plain Node script, imported by the tests).
export interface Facts {
  chromium: string | null;
  root: boolean;
  aptGet: boolean;
}
export interface Decision {
  action: 'none' | 'install' | 'fail';
  message: string;
}
export const DEBIAN_CHROMIUM: string;
export const INSTALL_AS_ROOT: string;
export const INSTALL_WITH_SUDO: string;
export function onPath(name: string, path?: string): string | null;
export function findChromium(path?: string): string | null;
export function probe(): Facts;
export function decide(facts: Facts): Decision;
export function ensureChromium(
  facts: Facts,
  io: {
    exec(command: string, args: string[], env: NodeJS.ProcessEnv): number;
    log(text: string): void;
    recheck(): string | null;
    dryRun?: boolean;
  },
): number;
