import { readFileSync } from 'node:fs';
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
  const policies = tempDir('report-policies');

  beforeAll(async () => {
    expect(CHROMIUM, `chromium is missing (npm test installs it when it can): ${INSTALL_WITH_SUDO}`).not.toBeNull();
    const r = await cvmsim(['sweep', 'mm-queue', '--grid', 'servers=1,2,4', '--grid', 'arrival_per_ms=0.5,0.9', '--seeds', '2', '--set', 'customers=300', '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    // The three acceptance policies on a small guest: what the decision summary compares.
    const p = await cvmsim(['sweep', 'accept-latency', '--grid', 'accept=eager,lazy,background', '--set', 'memory_gib=4', '--set', 'vcpus=2',
      '--set', 'app_gib=1', '--set', 'app_threads=1', '--out', policies], { fixture: false });
    expect(p.code, p.stderr).toBe(0);
    browser = await chromium.launch({ executablePath: CHROMIUM!, args: FLAGS, headless: true });
  }, 120_000);

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
    expect(byServers.title).toBe('mean_wait_ms');
    expect(byServers.axisLabels).toEqual(['servers (servers)', 'ms']);
    expect(byServers.legend).toEqual(['arrival_per_ms=0.5', 'arrival_per_ms=0.9']);
    expect(byServers.seriesPaths).toHaveLength(2);
    expect(byServers.points).toBe(6);

    // Distributions as survival functions on log-log axes.
    const cdf = charts.find((c) => c.id === 'mm-queue.curve.wait_cdf')!;
    expect(cdf.axisLabels).toEqual(['value (ms) (log)', 'fraction of samples above (log)']);
    const lockWait = charts.find((c) => c.id === 'mm-queue.curve.lock_wait_cdf.servers')!;
    expect(lockWait.axisLabels[0]).toMatch(/^wait for servers \(us\) \(log\)$/);
    expect(lockWait.axisLabels[1]).toBe('fraction of acquisitions above (log)');
    const queue = charts.find((c) => c.id === 'mm-queue.curve.queue_length')!;
    expect(queue.axisLabels).toEqual(['virtual time (ms)', 'customers']);
    // Twelve runs; runs whose curves coincide share one line whose label names each of them, and
    // a run that never waited has no tail to draw on a log axis (a note says how many).
    const named = cdf.legend.flatMap((l) => l.split(' = '));
    expect(named.length).toBeLessThanOrEqual(12);
    if (named.length < 12) expect(await page.textContent('body')).toContain(`${12 - named.length} run(s) have no sample above zero`);
    expect(cdf.legend[0]).toMatch(/^servers=1, arrival_per_ms=0\.5, seed 1( = |$)/);

    // Metrics as rows, parameter sets as columns: the table fits the page.
    const tables = await page.$$eval('table.metrics', (ts) => ts.map((t) => ({ rows: t.querySelectorAll('tr').length, width: t.getBoundingClientRect().width })));
    expect(tables.length).toBeGreaterThan(0);
    for (const t of tables) expect(t.width).toBeLessThanOrEqual(1040);
    // Small multiples: the metric charts sit side by side.
    const multiples = await page.$$eval('.multiples svg.chart', (svgs) => svgs.map((s) => s.getBoundingClientRect().top));
    expect(multiples.length).toBe(8);
    expect(new Set(multiples).size).toBeLessThan(multiples.length);
  });

  it('opens with the decision summary: the first table compares the policies and names the best per metric', async () => {
    const page = await browser.newPage();
    await page.goto(pathToFileURL(join(policies, 'report.html')).href);
    const first = await page.$eval('table', (t) => ({
      cls: t.className,
      header: [...t.querySelectorAll('tr:first-child th')].map((h) => h.textContent ?? ''),
      rows: [...t.querySelectorAll('tr')].slice(1).map((r) => [...r.querySelectorAll('td')].map((c) => ({ text: c.textContent ?? '', best: c.classList.contains('best') }))),
    }));
    expect(first.cls).toBe('decision');
    expect(first.header.slice(0, 4)).toEqual(['accept', 'boot to shell (s)', 'alloc p99 (us)', 'alloc p99.9 (us)']);
    expect(first.rows.map((r) => r[0]!.text)).toEqual(['eager', 'lazy', 'background', 'best']);
    const best = first.rows[3]!;
    for (let c = 1; c < first.header.length; c++) {
      const marked = first.rows.slice(0, 3).filter((r) => r[c]!.best).map((r) => r[0]!.text);
      expect(marked.length, first.header[c]).toBeGreaterThan(0);
      expect(best[c]!.text, first.header[c]).toBe(marked.length === 3 ? 'all equal' : marked.join(', '));
      for (const r of first.rows.slice(0, 3)) expect(r[c]!.text.startsWith('★'), `${first.header[c]} ${r[0]!.text}`).toBe(r[c]!.best);
    }
    // Eager acceptance boots slowest: lazy or background holds the best boot time.
    expect(best[1]!.text).not.toContain('eager');
  });

  it('draws the allocation latency tail as a survival function on log-log axes, and as bars per policy', async () => {
    const page = await browser.newPage();
    await page.goto(pathToFileURL(join(policies, 'report.html')).href);
    const survival = await page.$eval('svg[id="accept-latency.curve.alloc_latency_cdf"]', (svg) => ({
      labels: [...svg.querySelectorAll('.axis-label')].map((t) => t.textContent ?? ''),
      yTicks: [...svg.querySelectorAll('.y-axis .tick')].map((t) => t.textContent ?? ''),
    }));
    expect(survival.labels).toEqual(['allocation latency (us) (log)', 'fraction of allocations above (log)']);
    expect(survival.yTicks.length).toBeGreaterThanOrEqual(2);
    for (const t of survival.yTicks) expect(Number(t), t).toSatisfy((v: number) => Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9 || [2, 5].some((m) => Math.abs(Math.log10(v / m) - Math.round(Math.log10(v / m))) < 1e-9));
    const bars = await page.$eval('svg[id="accept-latency.tail_bars"]', (svg) => ({
      label: svg.querySelectorAll('.axis-label')[1]?.textContent ?? '',
      bars: svg.querySelectorAll('rect.bar').length,
      legend: [...svg.querySelectorAll('.legend-entry text')].map((t) => t.textContent ?? ''),
    }));
    expect(bars.label).toBe('allocation latency (us) (log)');
    expect(bars.legend).toEqual(['p99', 'p99.9', 'max']);
    expect(bars.bars).toBe(9);
  });

  it('a hover shows a point\'s value and parameters; a legend click hides its series', async () => {
    const page = await browser.newPage();
    await page.goto(pathToFileURL(join(dir, 'report.html')).href);
    const point = page.locator('svg[id="mm-queue.mean_wait_ms.vs.servers"] circle.point').first();
    await point.hover({ force: true });
    const tip = page.locator('#tip');
    await expect.poll(async () => tip.isVisible()).toBe(true);
    expect(await tip.textContent()).toMatch(/^arrival_per_ms=0\.5: servers \(servers\) 1 servers -> [\d.]+ ms \(95% CI /);
    const group = page.locator('svg[id="mm-queue.mean_wait_ms.vs.servers"] .series-group[data-series="0"]');
    expect(await group.isVisible()).toBe(true);
    await page.locator('svg[id="mm-queue.mean_wait_ms.vs.servers"] .legend-entry[data-series="0"]').click();
    expect(await group.isVisible()).toBe(false);
  });

  it('is one offline file, the same bytes when redrawn from the same results', async () => {
    const before = readFileSync(join(policies, 'report.html'), 'utf8');
    expect(before).not.toMatch(/<script[^>]+src=|<link[^>]+href=|(src|href)="https?:/);
    const r = await cvmsim(['report', policies], { fixture: false });
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(policies, 'report.html'), 'utf8')).toBe(before);
  });
});
