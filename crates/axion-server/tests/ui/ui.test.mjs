// The web UI in a real browser: Debian's headless Chromium, driven by playwright-core, against
// a real `axion serve` on 127.0.0.1:0 with traces sent through the ingestion API.
// `AXION_BIN` names the `axion` binary (`scripts/ui-tests.sh` builds it and runs this file);
// with `AXION_UI_DATABASE_URL` the server stores into that PostgreSQL database.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const PUBLIC_KEY = 'pk-lf-ui';
const SECRET_KEY = 'sk-lf-ui';
const AUTH = `Basic ${Buffer.from(`${PUBLIC_KEY}:${SECRET_KEY}`).toString('base64')}`;
const XSS_NAME = '<img src=x onerror="window.__xss=1">';

let server;
let dataDir;
let base;
let browser;
let context;
const policyViolations = [];

async function startServer() {
  dataDir = mkdtempSync(join(tmpdir(), 'axion-ui-'));
  const database = process.env.AXION_UI_DATABASE_URL;
  server = spawn(process.env.AXION_BIN || 'target/debug/axion', [
    'serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir,
    '--public-key', PUBLIC_KEY, '--secret-key', SECRET_KEY,
    ...(database ? ['--database-url', database] : []),
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let printed = '';
    server.on('exit', (code) => reject(new Error(`axion serve exited (${code}): ${printed}`)));
    server.stdout.on('data', (chunk) => {
      printed += chunk;
      const found = printed.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (found) resolve(found[1]);
    });
  });
}

async function call(path, { method = 'GET', body } = {}) {
  const response = await fetch(`${base}/api/public${path}`, {
    method,
    headers: { Authorization: AUTH, 'Content-Type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  const data = await response.json();
  assert.ok(response.ok || response.status === 207, `${method} ${path}: ${response.status} ${JSON.stringify(data)}`);
  return data;
}

// An hour ago, to the minute: inside every range the dashboard offers, whenever this runs.
const BASE = Math.floor((Date.now() - 3_600_000) / 60_000) * 60_000;
const at = (second) => new Date(BASE + second * 1000).toISOString();
const event = (index, type, body) => ({ id: `event-${index}`, type, timestamp: at(0), body });

/** Three traces: a RAG answer with a tree and an error, a plain one, and one named like markup. */
function traces() {
  return [
    event(1, 'trace-create', {
      id: 'trace-rag', name: 'support-answer', timestamp: at(0), userId: 'user-7', sessionId: 'sess-9',
      tags: ['prod', 'rag'], input: { question: 'How do I reset my key?' }, output: { answer: 'Use the settings page.' },
      metadata: { channel: 'chat' },
    }),
    event(2, 'span-create', { id: 'obs-retrieve', traceId: 'trace-rag', name: 'retrieve', startTime: at(0), endTime: at(2) }),
    event(3, 'span-create', {
      id: 'obs-rerank', traceId: 'trace-rag', parentObservationId: 'obs-retrieve', name: 'rerank',
      startTime: at(1), endTime: at(2), level: 'ERROR', statusMessage: 'reranker timed out',
    }),
    event(4, 'generation-create', {
      id: 'obs-generate', traceId: 'trace-rag', name: 'generate', startTime: at(2), endTime: at(4),
      model: 'gpt-4o-mini', usageDetails: { input: 1200, output: 300 }, modelParameters: { temperature: 0.2 },
      input: [{ role: 'user', content: 'How do I reset my key?' }], output: { role: 'assistant', content: 'Use the settings page.' },
    }),
    event(5, 'trace-create', { id: 'trace-plain', name: 'classify', timestamp: at(10), userId: 'user-8', tags: ['dev'] }),
    event(6, 'span-create', { id: 'obs-plain', traceId: 'trace-plain', name: 'classify-step', startTime: at(10), endTime: at(11) }),
    event(7, 'trace-create', {
      id: 'trace-markup', name: XSS_NAME, timestamp: at(20), userId: 'user-9',
      input: '<script>window.__xss=2</script>', tags: ['<b>bold</b>'],
    }),
  ];
}

before(async () => {
  base = await startServer();
  const result = await call('/ingestion', { method: 'POST', body: { batch: traces() } });
  assert.equal(result.errors.length, 0, JSON.stringify(result.errors));
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  context = await browser.newContext();
  context.on('page', watch);
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** Records what the page's content policy refused: our own code must never need an exception. */
function watch(page) {
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) policyViolations.push(message.text());
  });
  page.on('pageerror', (error) => policyViolations.push(`page error: ${error.message}`));
}

/** Waits until the page for the newest URL is shown (the UI marks `main` busy until then). */
async function settled(page) {
  await page.locator('main:not([aria-busy])').waitFor();
}

async function navigated(page, url) {
  await page.waitForURL(url);
  await settled(page);
}

async function rowNames(page) {
  await settled(page);
  return page.locator('[data-testid=traces] tbody tr td:nth-child(2)').allTextContents();
}

test('signing in, filtering, reading a trace tree and scoring an observation', { timeout: 60_000 }, async () => {
  const page = await context.newPage();
  await page.goto(`${base}/`);

  // Wrong keys are refused with a message; the right ones open the project's traces.
  await page.fill('input[name=publicKey]', PUBLIC_KEY);
  await page.fill('input[name=secretKey]', 'sk-lf-wrong');
  await page.click('button[type=submit]');
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').textContent(), /not accepted/);
  await page.fill('input[name=secretKey]', SECRET_KEY);
  await page.check('input[name=remember]');
  await page.click('button[type=submit]');
  await navigated(page, /\/project\/[^/]+\/traces$/);
  assert.deepEqual(await rowNames(page), [XSS_NAME, 'classify', 'support-answer']);

  // Markup in trace data stays text: no element made from it, no script run.
  assert.equal(await page.locator('main img').count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.locator('main b').count(), 0);

  // Pages, newest first.
  await page.goto(`${page.url()}?limit=1`);
  const seen = [];
  for (const expected of ['Page 1 of 3', 'Page 2 of 3', 'Page 3 of 3']) {
    await page.locator(`.pager:has-text("${expected}")`).waitFor();
    seen.push(...await rowNames(page));
    if (expected !== 'Page 3 of 3') await page.click('.pager a:text("Older →")');
  }
  assert.deepEqual(seen, [XSS_NAME, 'classify', 'support-answer']);
  assert.equal(await page.locator('.pager a:text("Older →")').count(), 0);
  await page.click('.pager a:text("← Newer")');
  await page.locator('.pager:has-text("Page 2 of 3")').waitFor();
  await page.click('form.filters button:text("Clear")');
  await navigated(page, /\/traces$/);
  await page.locator('.pager:has-text("Page 1 of 1")').waitFor();

  // Live: a trace sent meanwhile appears without a reload.
  await page.check('input[name=live]');
  await navigated(page, /live=1/);
  await call('/ingestion', {
    method: 'POST',
    body: { batch: [event(8, 'trace-create', { id: 'trace-live', name: 'arrived-later', timestamp: at(30), userId: 'user-10' })] },
  });
  await page.locator('[data-testid=traces] tbody tr td:nth-child(2):has-text("arrived-later")').waitFor({ timeout: 15_000 });
  await call('/traces/trace-live', { method: 'DELETE' });
  await page.click('form.filters button:text("Clear")');
  await navigated(page, /\/traces$/);

  // Filters: a user, a tag, errors only, a name fragment; each is in the URL.
  await page.fill('input[name=userId]', 'user-7');
  await page.click('form.filters button[type=submit]');
  await navigated(page, /userId=user-7/);
  assert.deepEqual(await rowNames(page), ['support-answer']);
  await page.click('form.filters button:text("Clear")');
  await page.fill('input[name=tags]', 'dev');
  await page.click('form.filters button[type=submit]');
  await navigated(page, /tags=dev/);
  assert.deepEqual(await rowNames(page), ['classify']);
  await page.click('form.filters button:text("Clear")');
  await page.check('input[name=errors]');
  await page.click('form.filters button[type=submit]');
  await navigated(page, /errors=1/);
  assert.deepEqual(await rowNames(page), ['support-answer']);
  await page.click('form.filters button:text("Clear")');
  await page.fill('input[name=name]', 'lassi');
  await page.click('form.filters button[type=submit]');
  await navigated(page, /name=lassi/);
  assert.deepEqual(await rowNames(page), ['classify']);

  // The trace: its facts, the tree in start order with depth, and the generation's details.
  await page.click('form.filters button:text("Clear")');
  await page.click('text=support-answer');
  await navigated(page, /\/traces\/trace-rag$/);
  const tree = page.locator('[data-testid=tree] .node');
  await tree.first().waitFor();
  const nodes = await tree.evaluateAll((rows) => rows.map((row) => [row.querySelector('.name').textContent, row.dataset.depth ?? '-']));
  assert.deepEqual(nodes, [['support-answer', '-'], ['retrieve', '0'], ['rerank', '1'], ['generate', '0']]);
  assert.match(await page.locator('[data-testid=detail] [data-testid=input]').textContent(), /reset my key/);
  assert.match(await page.locator('.node[data-id=obs-rerank]').getAttribute('class'), /level-ERROR/);

  await page.click('.node[data-id=obs-generate]');
  await navigated(page, /observation=obs-generate/);
  const detail = await page.locator('[data-testid=detail]').textContent();
  assert.match(detail, /gpt-4o-mini/);
  assert.match(detail, /input 1200/);
  assert.match(detail, /output 300/);
  assert.match(detail, /Cost\$\d/);
  assert.match(await page.locator('[data-testid=model-parameters]').textContent(), /temperature/);
  // Chat messages read as a conversation, with the JSON a click away.
  assert.deepEqual(await page.locator('[data-testid=input] .message .role').allTextContents(), ['user']);
  assert.equal(await page.locator('[data-testid=input] .message .content').textContent(), 'How do I reset my key?');
  assert.match(await page.locator('[data-testid=output] .message.role-assistant').textContent(), /settings page/);
  await page.click('h2:has-text("Input") button:text("JSON")');
  assert.match(await page.locator('[data-testid=input] pre').textContent(), /"role": "user"/);

  // A numeric score on the generation, from the form; the API has it with the observation.
  await page.fill('[data-testid=score-form] input[name=name]', 'helpfulness');
  await page.fill('[data-testid=score-form] input[name=value]', '0.8');
  await page.fill('[data-testid=score-form] input[name=comment]', 'clear answer');
  await page.click('[data-testid=score-form] button[type=submit]');
  await page.locator('[data-testid=scores] tbody tr').first().waitFor();
  assert.deepEqual(await page.locator('[data-testid=scores] tbody tr td:nth-child(-n+4)').allTextContents(),
    ['helpfulness', '0.8', 'generate', 'clear answer']);
  const stored = await call('/scores?traceId=trace-rag');
  assert.equal(stored.data.length, 1);
  assert.deepEqual(
    [stored.data[0].name, stored.data[0].value, stored.data[0].observationId, stored.data[0].source, stored.data[0].comment],
    ['helpfulness', 0.8, 'obs-generate', 'ANNOTATION', 'clear answer'],
  );
  // The selected observation survives the reload after scoring.
  assert.match(page.url(), /observation=obs-generate/);

  // A categorical score on the trace itself.
  await page.click('.node[data-id=""]');
  await page.selectOption('[data-testid=score-form] select[name=dataType]', 'CATEGORICAL');
  await page.fill('[data-testid=score-form] input[name=name]', 'topic');
  await page.fill('[data-testid=score-form] input[name=value]', 'account');
  await page.click('[data-testid=score-form] button[type=submit]');
  await page.locator('[data-testid=scores] tbody tr:nth-child(2)').waitFor();
  const topic = (await call('/scores?traceId=trace-rag&name=topic')).data;
  assert.deepEqual([topic.length, topic[0].stringValue, topic[0].observationId ?? null], [1, 'account', null]);
  await page.close();
});

test('a trace link opens directly once signed in on this browser; sessions; signing out', { timeout: 60_000 }, async () => {
  const page = await context.newPage();
  const listed = await call('/traces?userId=user-7');
  await page.goto(`${base}${listed.data[0].htmlPath}?observation=obs-rerank`);
  await page.locator('[data-testid=detail]').waitFor();
  assert.match(await page.locator('[data-testid=detail]').textContent(), /reranker timed out/);
  assert.match(await page.locator('.node.selected').textContent(), /rerank/);
  // The tree works from the keyboard too.
  await page.focus('.node[data-id=obs-generate]');
  await page.keyboard.press('Enter');
  await navigated(page, /observation=obs-generate/);
  assert.match(await page.locator('[data-testid=detail]').textContent(), /gpt-4o-mini/);

  // The dashboard: totals, the model's tokens and cost, latency by name, score averages.
  await page.click('#nav a:text("Dashboard")');
  await settled(page);
  assert.equal(await page.locator('[data-testid=total-traces] .big').textContent(), '3');
  assert.equal(await page.locator('[data-testid=total-observations] .big').textContent(), '4');
  assert.match(await page.locator('[data-testid=total-tokens] .big').textContent(), /^1,?500$/);
  assert.match(await page.locator('[data-testid=total-cost] .big').textContent(), /^\$0\.\d/);
  assert.deepEqual(
    (await page.locator('[data-testid=models] tbody tr td').allTextContents()).slice(0, 4).map((text) => text.replace(/,/g, '')),
    ['gpt-4o-mini', '1', '1200', '300'],
  );
  assert.deepEqual((await page.locator('[data-testid=latency] tbody tr td:first-child').allTextContents()).sort(),
    ['classify-step', 'generate', 'rerank', 'retrieve']);
  assert.deepEqual(await page.locator('[data-testid=score-averages] tbody tr td').allTextContents(),
    ['helpfulness', 'ANNOTATION', '1', '0.800']);
  assert.ok(await page.locator('[data-testid=activity] tbody tr').count() >= 1);
  await page.click('.pager a:text("Last 24 hours")');
  await navigated(page, /range=24h/);
  assert.equal(await page.locator('[data-testid=total-observations] .big').textContent(), '4');

  // Sessions, and back to the session's traces.
  await page.click('#nav a:text("Sessions")');
  await page.locator('[data-testid=sessions]').waitFor();
  assert.deepEqual(await page.locator('[data-testid=sessions] tbody tr td:first-child').allTextContents(), ['sess-9']);
  await page.click('text=sess-9');
  await page.locator('[data-testid=session-traces]').waitFor();
  assert.deepEqual(await page.locator('[data-testid=session-traces] tbody tr td:nth-child(2)').allTextContents(), ['support-answer']);

  // Observations across traces, filtered by type, level and model; a row opens its trace.
  await page.click('#nav a:text("Observations")');
  await page.locator('[data-testid=observations]').waitFor();
  const observationNames = async () => {
    await settled(page);
    return page.locator('[data-testid=observations] tbody tr td:nth-child(3)').allTextContents();
  };
  assert.deepEqual((await observationNames()).sort(), ['classify-step', 'generate', 'rerank', 'retrieve']);
  await page.goto(`${page.url()}?limit=2`);
  await page.locator('[data-testid=observations] tbody tr').first().waitFor();
  const firstPage = await observationNames();
  await page.click('.pager a:text("Older →")');
  await navigated(page, /cursor=/);
  await page.waitForFunction((names) => {
    const cells = [...document.querySelectorAll('[data-testid=observations] tbody tr td:nth-child(3)')];
    return cells.length > 0 && !cells.some((cell) => names.includes(cell.textContent));
  }, firstPage);
  assert.deepEqual([...firstPage, ...await observationNames()].sort(), ['classify-step', 'generate', 'rerank', 'retrieve']);
  await page.click('#nav a:text("Observations")');
  await page.locator('[data-testid=observations]').waitFor();
  await page.selectOption('form.filters select[name=type]', 'GENERATION');
  await page.click('form.filters button[type=submit]');
  await navigated(page, /type=GENERATION/);
  assert.deepEqual(await observationNames(), ['generate']);
  assert.deepEqual(await page.locator('[data-testid=observations] tbody tr td:nth-child(n+5):nth-child(-n+7)').allTextContents(),
    ['gpt-4o-mini', '1200', '300']);
  assert.match(await page.locator('[data-testid=observations] tbody tr td:nth-child(8)').textContent(), /^\$\d/);
  await page.click('form.filters button:text("Clear")');
  await page.selectOption('form.filters select[name=level]', 'ERROR');
  await page.click('form.filters button[type=submit]');
  await navigated(page, /level=ERROR/);
  assert.deepEqual(await observationNames(), ['rerank']);
  await page.click('[data-testid=observations] tbody tr td:nth-child(4)');
  await navigated(page, /\/traces\/trace-rag\?observation=obs-rerank$/);
  await page.locator('.node.selected').waitFor();

  // Deleting a trace from its page, after confirming; the API no longer finds it.
  await page.goto(`${base}/project/${listed.data[0].projectId}/traces/trace-plain`);
  await page.locator('[data-testid=tree]').waitFor();
  page.once('dialog', (dialog) => dialog.accept());
  await page.click('button:text("Delete trace")');
  await navigated(page, /\/traces$/);
  assert.equal((await rowNames(page)).includes('classify'), false);
  const gone = await fetch(`${base}/api/public/traces/trace-plain`, { headers: { Authorization: AUTH } });
  assert.equal(gone.status, 404);

  // Scores across traces: the two added in the first test, filtered by type; a row opens its target.
  await page.click('#nav a:text("Scores")');
  await settled(page);
  const scoreNames = async () => {
    await settled(page);
    return page.locator('[data-testid=score-list] tbody tr td:nth-child(2)').allTextContents();
  };
  assert.deepEqual((await scoreNames()).sort(), ['helpfulness', 'topic']);
  await page.selectOption('form.filters select[name=dataType]', 'CATEGORICAL');
  await page.click('form.filters button[type=submit]');
  await navigated(page, /dataType=CATEGORICAL/);
  assert.deepEqual(await scoreNames(), ['topic']);
  assert.equal(await page.locator('[data-testid=score-list] tbody tr td:nth-child(3)').textContent(), 'account');
  await page.click('form.filters button:text("Clear")');
  await page.selectOption('form.filters select[name=source]', 'ANNOTATION');
  await page.fill('form.filters input[name=name]', 'helpfulness');
  await page.click('form.filters button[type=submit]');
  await navigated(page, /name=helpfulness/);
  assert.deepEqual(await scoreNames(), ['helpfulness']);
  await page.click('[data-testid=score-list] tbody tr a:text("observation")');
  await navigated(page, /\/traces\/trace-rag\?observation=obs-generate$/);
  assert.match(await page.locator('.node.selected').textContent(), /generate/);

  // A trace without observations, named like markup: its page shows the name as text.
  await page.goto(`${base}/project/${listed.data[0].projectId}/traces/trace-markup`);
  await page.locator('[data-testid=tree]').waitFor();
  assert.equal(await page.locator('main h1').textContent(), XSS_NAME);
  assert.equal(await page.locator('[data-testid=tree] .node').count(), 1);
  assert.equal(await page.locator('[data-testid=input]').textContent(), '<script>window.__xss=2</script>');
  assert.equal(await page.locator('main img, main script').count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);

  // The trace downloads as the API's JSON, observations and scores included.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('button:text("Download JSON")')]);
  assert.equal(download.suggestedFilename(), 'trace-trace-markup.json');
  const saved = JSON.parse(await readFile(await download.path(), 'utf8'));
  assert.deepEqual([saved.id, saved.name, saved.observations.length], ['trace-markup', XSS_NAME, 0]);

  // A trace opened by its id, as from a log line.
  await page.click('#nav a:text("Traces")');
  await settled(page);
  await page.fill('form.goto input[name=traceId]', ' trace-rag ');
  await page.click('form.goto button[type=submit]');
  await navigated(page, /\/traces\/trace-rag$/);
  assert.equal(await page.locator('main h1').textContent(), 'support-answer');

  // Another project's link says so instead of showing nothing.
  await page.goto(`${base}/project/someone-else/traces`);
  assert.match(await page.getByRole('alert').textContent(), /belongs to project someone-else/);

  await page.click('button:text("Sign out")');
  await page.locator('form.signin').waitFor();
  assert.equal(await page.evaluate(() => localStorage.getItem('axion.keys')), null);
  await page.reload();
  await page.locator('form.signin').waitFor();
  await page.close();
});

test('the page ran without a content-policy violation or an uncaught error', () => {
  assert.deepEqual(policyViolations, []);
});
