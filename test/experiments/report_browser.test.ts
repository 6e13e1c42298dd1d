import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findChromium, INSTALL_WITH_SUDO } from '../../tools/ensure_chromium.mjs';
import { cvmsim, tempDir } from './cli_harness.ts';

/**
 * report.html opened in a real browser: Debian's chromium (installed by `npm test`'s pretest step,
 * tools/ensure_chromium.mjs), driven by playwright-core. A missing browser fails the test rather
 * than skipping it.
 */
const CHROMIUM = findChromium();
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

interface DrawnChart {
  id: string;
  title: string;
  declaredSeries: number;
  seriesPaths: { d: number; width: number; height: number }[];
  points: number;
  axisLabels: string[];
  ticks: number;
  legend: string[];
  width: number;
}

describe('report.html in headless Chromium', () => {
  let browser: Browser;
  const dir = tempDir('report');

  beforeAll(async () => {
    expect(CHROMIUM, `chromium is missing (npm test installs it when it can): ${INSTALL_WITH_SUDO}`).not.toBeNull();
    const r = await cvmsim(['sweep', 'mm-queue', '--grid', 'servers=1,2,4', '--grid', 'arrival_per_ms=0.5,0.9', '--seeds', '2', '--set', 'customers=300', '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    browser = await chromium.launch({ executablePath: CHROMIUM!, args: FLAGS, headless: true });
  });

  afterAll(async () => {
    await browser?.close();
  });

  it('draws every chart with axes, unit labels, lines and a legend', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await page.goto(pathToFileURL(join(dir, 'report.html')).href);
    const charts: DrawnChart[] = await page.$$eval('svg.chart', (svgs) => svgs.map((svg) => {
      const box = (e: Element) => (e as SVGGraphicsElement).getBBox();
      return {
        id: svg.id,
        title: svg.querySelector('.chart-title')?.textContent ?? '',
        declaredSeries: Number(svg.getAttribute('data-series')),
        seriesPaths: [...svg.querySelectorAll('path.series')].map((p) => ({ d: (p.getAttribute('d') ?? '').length, width: box(p).width, height: box(p).height })),
        points: svg.querySelectorAll('circle.point').length,
        axisLabels: [...svg.querySelectorAll('.axis-label')].map((t) => t.textContent ?? ''),
        ticks: svg.querySelectorAll('.tick').length,
        legend: [...svg.querySelectorAll('.legend-entry text')].map((t) => t.textContent ?? ''),
        width: svg.getBoundingClientRect().width,
      };
    }));
    expect(errors).toEqual([]);

    // 4 varying metrics x 2 numeric swept parameters, the fixture's 2 curves and the wait
    // distribution of its `servers` semaphore; customers_served is the same in every run, so it
    // is named in a note rather than drawn as a flat line.
    expect(charts.map((c) => c.id)).toContain('mm-queue.mean_wait_ms.vs.servers');
    expect(charts.map((c) => c.id)).toContain('mm-queue.curve.wait_cdf');
    expect(charts).toHaveLength(11);
    expect(await page.textContent('body')).toContain('Not drawn against servers, the same in every run: customers_served = 300.');
    for (const c of charts) {
      expect(c.width, c.id).toBeGreaterThan(300);
      expect(c.title, c.id).not.toBe('');
      expect(c.axisLabels, c.id).toHaveLength(2);
      expect(c.ticks, c.id).toBeGreaterThanOrEqual(4);
      expect(c.legend.length, c.id).toBe(c.declaredSeries);
      expect(c.legend.every((l) => l !== ''), c.id).toBe(true);
      const drawn = c.seriesPaths.filter((p) => p.d > 10 && (p.width > 0 || p.height > 0));
      expect(drawn.length + c.points, c.id).toBeGreaterThan(0);
    }

    const byServers = charts.find((c) => c.id === 'mm-queue.mean_wait_ms.vs.servers')!;
    expect(byServers.axisLabels).toEqual(['servers (servers)', 'mean_wait_ms (ms)']);
    expect(byServers.legend).toEqual(['arrival_per_ms=0.5', 'arrival_per_ms=0.9']);
    expect(byServers.seriesPaths).toHaveLength(2);
    expect(byServers.points).toBe(6);

    const cdf = charts.find((c) => c.id === 'mm-queue.curve.wait_cdf')!;
    expect(cdf.axisLabels).toEqual(['value (ms)', 'fraction of samples <= value']);
    const lockWait = charts.find((c) => c.id === 'mm-queue.curve.lock_wait_cdf.servers')!;
    expect(lockWait.axisLabels[0]).toMatch(/^wait for servers \(us\)/);
    expect(lockWait.axisLabels[1]).toBe('fraction of acquisitions <= wait');
    const queue = charts.find((c) => c.id === 'mm-queue.curve.queue_length')!;
    expect(queue.axisLabels).toEqual(['virtual time (ms)', 'customers']);
    expect(cdf.legend).toHaveLength(12);
    expect(cdf.legend[0]).toBe('servers=1, arrival_per_ms=0.5, seed 1');

    const tables = await page.$$eval('table', (ts) => ts.map((t) => t.querySelectorAll('tr').length));
    expect(tables).toEqual([7]);
  });
});
