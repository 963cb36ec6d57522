// Browser tests of the webhookd console: the real binary on a temporary data directory and a
// free loopback port, driven in headless Chromium (Debian's package) through playwright-core.
// Tasks are delivered to an agent the tests run on loopback (so webhookd runs with
// --allow-private-targets), which answers as each test scripts it.
//
//   WEBHOOKD_BIN=target/debug/webhookd node console-tests/run.mjs
//
// Environment:
//   WEBHOOKD_BIN     the webhookd binary (required; `cargo xtask test` builds and passes it)
//   CHROMIUM         the browser (default /usr/bin/chromium, else `chromium` on PATH)
//   SCREENSHOT_DIR   where page screenshots go (default target/console-tests/screenshots);
//                    docs/screenshots holds the ones the README shows
//
// Every wait is on an element or an answer, bounded by a timeout; nothing sleeps.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createHmac } from 'node:crypto';
import { mkdtempSync, mkdirSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STARTUP_MS = 60_000;
const ACTION_MS = 15_000;
const STEP_MS = 60_000;
const WHOLE_RUN_MS = 300_000;
const WIDE = { width: 1280, height: 860 };
const NARROW = { width: 390, height: 844 };
// The widths at which no page may scroll sideways.
const CHECKED_WIDTHS = [{ width: 1440, height: 900 }, NARROW];

// A last resort: whatever hangs, the run ends.
setTimeout(() => {
  console.error(`console tests: still running after ${WHOLE_RUN_MS / 1000} s; giving up`);
  process.exit(1);
}, WHOLE_RUN_MS).unref();

function chromiumPath() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  if (existsSync('/usr/bin/chromium')) return '/usr/bin/chromium';
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('Chromium not found: install Debian\'s chromium package or set CHROMIUM');
  }
}

const binary = process.env.WEBHOOKD_BIN;
if (!binary || !existsSync(binary)) {
  throw new Error(`WEBHOOKD_BIN must name the webhookd binary (got ${binary ?? 'nothing'}); build it with cargo build -p webhookd`);
}
const screenshotDir = path.resolve(ROOT, process.env.SCREENSHOT_DIR || 'target/console-tests/screenshots');
mkdirSync(screenshotDir, { recursive: true });
for (const old of readdirSync(screenshotDir)) {
  if (old.startsWith('failure-')) rmSync(path.join(screenshotDir, old));
}
const scratch = mkdtempSync(path.join(tmpdir(), 'webhookd-console-'));

// ---------------------------------------------------------------------------------------------
// webhookd

/** Starts webhookd on a free port; resolves with its base URL and the admin key it printed. */
function startWebhookd() {
  const env = { ...process.env, RUST_LOG: 'info', NO_COLOR: '1' };
  for (const name of Object.keys(env)) {
    if (name === 'DATABASE_URL' || name.startsWith('WEBHOOKD_')) delete env[name];
  }
  // Private targets are allowed: the agent the tests deliver to listens on loopback.
  const child = spawn(binary, ['serve', '--listen', '127.0.0.1:0', '--data-dir', path.join(scratch, 'data'), '--allow-private-targets'], {
    env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (chunk) => { output.stdout += chunk; });
  child.stderr.setEncoding('utf8').on('data', (chunk) => { output.stderr += chunk; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`webhookd did not start within ${STARTUP_MS / 1000} s:\n${output.stderr}`));
    }, STARTUP_MS);
    const check = () => {
      const address = /listening on http:\/\/(\S+)/.exec(output.stderr);
      const key = /\b(whk_\S+)/.exec(output.stdout);
      if (address && key) {
        clearTimeout(timer);
        child.stdout.off('data', check);
        child.stderr.off('data', check);
        resolve({ child, output, base: `http://${address[1]}`, adminKey: key[1] });
      }
    };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`webhookd exited (${code ?? signal}) before it served:\n${output.stderr}`));
    });
  });
}

async function stopWebhookd(server) {
  if (!server || server.child.exitCode !== null) return;
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

/**
 * An agent on loopback, for a target's endpoint: it answers each delivery by the task's
 * instruction, `script[instruction]` giving the statuses of its first deliveries in order (later
 * ones, and every other task, answer 200), each with a JSON body. Resolves with its URL, the
 * tasks it received, and `close`.
 */
function startAgent(script) {
  const received = [];
  const server = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => {
      let task = {};
      try { task = JSON.parse(body); } catch { task = {}; }
      const before = received.filter((t) => t.instruction === task.instruction).length;
      received.push(task);
      const status = (script[task.instruction] || [])[before] ?? 200;
      let answer = { accepted: true, task_id: task.task_id };
      if (status >= 500) answer = { error: 'warming up, try again', retry: true };
      else if (status >= 300) answer = { error: 'unknown repository', retry: false };
      response.writeHead(status, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify(answer));
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({
      url: `http://127.0.0.1:${server.address().port}/tasks`,
      received,
      close: () => new Promise((done) => { server.close(done); }),
    }));
  });
}

/**
 * A request with a deadline; answers the status and the parsed JSON body (or null). `body` is
 * sent as JSON, `raw` as it is (a signed body must arrive byte for byte).
 */
async function http(method, url, { headers = {}, body, raw } = {}) {
  const response = await fetch(url, {
    method, headers, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)), signal: AbortSignal.timeout(ACTION_MS),
  });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  return { status: response.status, json };
}

// ---------------------------------------------------------------------------------------------
// The scenario: each step runs after the previous one, and is skipped once one has failed.

let server;
let context;
let page;
let failed = false;
const seen = {};

/** A screenshot of the page, or with `options.of` of one element. */
async function shot(name, options = {}) {
  // The toast of an earlier action would cover part of the page.
  await page.evaluate(() => {
    document.getElementById('toast').classList.remove('shown');
    window.scrollTo(0, 0);
  });
  const file = { path: path.join(screenshotDir, `${name}.png`), animations: 'disabled', caret: 'hide' };
  if (options.of) await options.of.screenshot(file);
  else await page.screenshot({ ...file, fullPage: options.fullPage ?? false });
}

function step(name, body) {
  test(name, { timeout: STEP_MS }, async (t) => {
    if (failed) {
      t.skip('an earlier step failed');
      return;
    }
    try {
      await body();
    } catch (error) {
      failed = true;
      if (page) {
        await page.screenshot({ path: path.join(screenshotDir, `failure-${name.replace(/\W+/g, '-')}.png`) }).catch(() => {});
      }
      if (server) error.message += `\nwebhookd's log, last lines:\n${server.output.stderr.split('\n').slice(-15).join('\n')}`;
      throw error;
    }
  });
}

after(async () => {
  await context?.close().catch(() => {});
  await stopWebhookd(server);
  await seen.agent?.close();
  rmSync(scratch, { recursive: true, force: true });
});

/** Text of the first element matching `selector` once it contains `text`. */
async function waitForText(selector, text) {
  const locator = page.locator(selector).filter({ hasText: text }).first();
  await locator.waitFor({ state: 'visible' });
  return locator;
}

async function heading(text) {
  await page.getByRole('heading', { level: 1, name: text }).waitFor();
}

/** Polls `check` until it answers true, for at most ACTION_MS. */
async function until(check, what) {
  const deadline = Date.now() + ACTION_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => { setTimeout(resolve, 100); });
  }
}

function nav(name) {
  return page.locator('.mainnav').getByRole('link', { name, exact: true });
}

async function filter(name) {
  await page.locator('.segmented label').filter({ hasText: name }).click();
}

// Waits until the log lists exactly `count` rows: the page of the filter just chosen replaces
// the previous one when its answer arrives, so a row can still belong to the previous page.
async function logRows(count) {
  await page
    .waitForFunction((n) => document.querySelectorAll('.log > li').length === n, count, { timeout: 10_000 })
    .catch(() => {});
  assert.equal(await page.locator('.log > li').count(), count);
}

async function clipboard() {
  return page.evaluate(() => navigator.clipboard.readText());
}

async function noHorizontalScroll() {
  const widths = await page.evaluate(() => [document.scrollingElement.scrollWidth, window.innerWidth]);
  assert.ok(widths[0] <= widths[1], `the page scrolls sideways: ${widths[0]} px wide in a ${widths[1]} px window`);
  // Nor is anything cut off inside it: a table wider than its card hides its last columns.
  const clipped = await page.evaluate(() => [...document.querySelectorAll('.table-wrap, .card, .board, .log')]
    .filter((el) => el.scrollWidth > el.clientWidth + 1).map((el) => `${el.className}: ${el.scrollWidth} > ${el.clientWidth}`));
  assert.deepEqual(clipped, [], `something is wider than its box at ${widths[1]} px`);
}

/** Asserts that the page, once `ready` answers, fits at 1440 and at 390 px; back to WIDE after. */
async function fitsEveryWidth(ready) {
  for (const size of CHECKED_WIDTHS) {
    await page.setViewportSize(size);
    await ready();
    await noHorizontalScroll();
  }
  await page.setViewportSize(WIDE);
}

const adminHeaders = () => ({ Authorization: `Bearer ${server.adminKey}`, 'Content-Type': 'application/json' });

step('webhookd starts and the browser opens the console', async () => {
  server = await startWebhookd();
  context = await chromium.launchPersistentContext(path.join(scratch, 'profile'), {
    executablePath: chromiumPath(),
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: WIDE,
    locale: 'en-US',
    timezoneId: 'Europe/Berlin',
    timeout: STARTUP_MS,
  });
  context.setDefaultTimeout(ACTION_MS);
  context.setDefaultNavigationTimeout(ACTION_MS);
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.base });
  page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  seen.pageErrors = errors;
  await page.goto(`${server.base}/`);
  await heading('Sign in');
  await shot('sign-in');
});

step('a wrong key is refused next to the field, the admin key signs in', async () => {
  const input = page.getByLabel('API key');
  await input.fill('whk_not-a-key');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const error = page.locator(`#${await input.getAttribute('id')}-error`);
  await error.waitFor();
  assert.match(await error.textContent(), /not accepted/);
  assert.equal(await input.getAttribute('aria-invalid'), 'true');
  await input.fill(server.adminKey);
  await input.press('Enter');
  await heading('Webhooks');
  await waitForText('.empty', 'No webhooks yet');
  await waitForText('#role-badge', 'Admin');
  // The key stays out of the URL, in this tab's sessionStorage.
  assert.ok(!page.url().includes(server.adminKey));
  assert.equal(await page.evaluate(() => sessionStorage.getItem('webhookd.apiKey')), server.adminKey);
  // With no target yet, the empty state points at the targets page.
  await page.getByRole('link', { name: 'Create a target first' }).click();
  await heading('Targets');
  await waitForText('.empty', 'No targets yet');
});

step('a target is created, its signing secret shown once; a bad endpoint is refused in words', async () => {
  await page.getByRole('button', { name: 'Create Target' }).first().click();
  const dialog = page.getByRole('dialog', { name: 'Create target' });
  await dialog.getByLabel('Kind').selectOption('agent');
  await dialog.getByLabel('Name').fill('Deploy bot');
  const endpoint = dialog.getByLabel('Endpoint URL');
  await endpoint.fill('ftp://agent.example.com/tasks');
  await dialog.getByRole('button', { name: 'Create target' }).click();
  const error = page.locator(`#${await endpoint.getAttribute('id')}-error`);
  await error.waitFor();
  assert.equal(await error.textContent(), 'Endpoint URL must use http or https.');
  await endpoint.fill('');
  await dialog.getByRole('button', { name: 'Create target' }).click();
  const created = page.getByRole('dialog', { name: 'Target created' });
  await created.getByText('you will not see this again').waitFor();
  assert.match(await created.getByLabel('Secret', { exact: true }).inputValue(), /\S{16,}/);
  await created.getByRole('button', { name: 'Done' }).click();
  await waitForText('table.list td', 'Deploy bot');
  await waitForText('table.list td', 'None: tasks wait on the board');
});

step('a webhook is created with a generated secret, and its URL copied', async () => {
  await nav('Webhooks').click();
  await heading('Webhooks');
  // Keyboard: the dialog opens on the button, Escape closes it and focus comes back.
  const open = page.getByRole('button', { name: 'Create Webhook' }).first();
  await open.focus();
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: 'Create webhook' });
  await dialog.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.name), 'name');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Create Webhook');

  await open.click();
  await dialog.getByLabel('Name').fill('CI pipeline');
  await dialog.getByLabel('Target').selectOption({ label: 'Deploy bot (agent)' });
  const events = dialog.getByLabel('Event types');
  await events.fill('deploy.*');
  await shot('create-webhook');
  await events.fill('deploy.*, bad type!');
  await dialog.getByRole('button', { name: 'Create webhook' }).click();
  const error = page.locator(`#${await events.getAttribute('id')}-error`);
  await error.waitFor();
  assert.match(await error.textContent(), /^Event type 2 \(“bad type!”\) may contain only letters/);
  await events.fill('deploy.*');
  await dialog.getByRole('button', { name: 'Create webhook' }).click();

  const created = page.getByRole('dialog', { name: 'Webhook created' });
  await created.getByText('you will not see this again').waitFor();
  // The secret is shown once: Escape and the close button ask before the dialog goes.
  await page.keyboard.press('Escape');
  const ask = created.getByRole('alertdialog', { name: /Close without copying the secret/ });
  await ask.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Keep it open', 'the question starts on the safe answer');
  await page.keyboard.press('Escape');
  await ask.waitFor({ state: 'detached' });
  assert.ok(await created.isVisible(), 'Escape twice still keeps the secret on screen');
  await created.getByRole('button', { name: 'Close', exact: true }).click();
  await ask.waitFor();
  await shot('secret-close-confirm');
  await ask.getByRole('button', { name: 'Keep it open' }).click();
  await ask.waitFor({ state: 'detached' });
  assert.ok(await created.isVisible());
  seen.url = await created.getByLabel('Webhook URL', { exact: true }).inputValue();
  seen.secret = await created.getByLabel('Secret', { exact: true }).inputValue();
  assert.match(seen.url, new RegExp(`^${server.base}/api/webhooks/[0-9a-f-]{36}$`));
  assert.ok(seen.secret.length >= 16);
  await created.getByRole('button', { name: 'Copy webhook url' }).click();
  await created.locator('button', { hasText: 'Copied' }).waitFor();
  assert.equal(await clipboard(), seen.url);
  await shot('webhook-created');
  await created.getByRole('button', { name: 'Done' }).click();
  await heading('CI pipeline');
  seen.webhookId = seen.url.split('/').pop();
  assert.ok(page.url().endsWith(`#/webhooks/${seen.webhookId}`));
});

step('the list shows the webhook and copies its URL; it fits at 1440 and 390 px', async () => {
  await page.evaluate(() => navigator.clipboard.writeText(''));
  await nav('Webhooks').click();
  const row = page.locator('table.list tbody tr').filter({ hasText: 'CI pipeline' });
  await row.waitFor();
  const text = await row.textContent();
  for (const part of ['Deploy bot', 'Active', 'Never', seen.url]) assert.ok(text.includes(part), `${part} missing from ${text}`);
  // Nothing has arrived yet: the webhook reads as quiet, not as failing.
  assert.equal(await row.locator('[data-health="quiet"]').textContent(), 'QuietNothing received');
  await row.getByRole('button', { name: 'Copy URL of CI pipeline' }).click();
  await row.locator('button', { hasText: 'Copied' }).waitFor();
  assert.equal(await clipboard(), seen.url);
  await row.getByRole('button', { name: 'Copy URL of CI pipeline' }).waitFor();
  await fitsEveryWidth(() => row.getByRole('button', { name: 'Copy URL of CI pipeline' }).waitFor());
});

step('an event sent to the URL shows in the log, payload expandable', async () => {
  const sent = await http('POST', seen.url, {
    headers: { 'Content-Type': 'application/json', 'X-Webhook-Secret': seen.secret, 'X-Event-Type': 'deploy.finished' },
    body: { message: 'Deploy api to production', version: '2.4.1' },
  });
  assert.equal(sent.status, 202, JSON.stringify(sent.json));
  await page.getByRole('link', { name: 'CI pipeline' }).click();
  await heading('CI pipeline');
  await page.getByRole('link', { name: 'Invocation log' }).click();
  const entry = page.locator('.log > li').filter({ hasText: 'deploy.finished' });
  await entry.waitFor();
  assert.match(await entry.textContent(), /Accepted.*HTTP 202/);
  // The row previews the message; opening it reads the whole payload.
  assert.match(await entry.locator('summary').textContent(), /Deploy api to production/);
  await entry.locator('summary').click();
  await entry.locator('pre.json').filter({ hasText: '"version": "2.4.1"' }).waitFor();
  await entry.getByText('No delivery attempt yet').waitFor();
  await entry.getByText('Open the task · Queued').waitFor();

  // The log is live: a new request shows on top, and a row follows its delivery. A failed
  // delivery is never green.
  const again = await http('POST', seen.url, {
    headers: { 'Content-Type': 'application/json', 'X-Webhook-Secret': seen.secret, 'X-Event-Type': 'deploy.finished' },
    body: { message: 'Deploy web to production' },
  });
  assert.equal(again.status, 202, JSON.stringify(again.json));
  const web = page.locator('.log > li').first().filter({ hasText: 'Deploy web to production' });
  await web.waitFor();
  await web.locator('[data-delivery="queued"]').waitFor();
  const failed = await http('PATCH', `${server.base}/api/v1/tasks/${again.json.task_id}`, { headers: adminHeaders(), body: { status: 'failed' } });
  assert.equal(failed.status, 200, JSON.stringify(failed.json));
  await web.locator('[data-delivery="failed"]').filter({ hasText: 'Delivery failed' }).waitFor();
  const accepted = web.locator('[data-outcome="accepted"]');
  assert.match(await accepted.getAttribute('class'), /badge-failed/);
  const green = await accepted.evaluate((el) => {
    const [r, g, b] = getComputedStyle(el).color.match(/\d+/g).map(Number);
    return g > r + 40 && g > b + 40;
  });
  assert.equal(green, false, 'an accepted request whose delivery failed is not green');
});

step('Test sends an editable payload, shows the outcome and links to the task on the board', async () => {
  await page.getByRole('link', { name: 'Overview' }).click();
  const payload = page.getByLabel('Sample payload (JSON)');
  await payload.waitFor();
  assert.match(await payload.inputValue(), /"event_type": "deploy.test"/);
  await payload.fill('{"message": "Roll back api", ');
  await page.getByRole('button', { name: 'Send test event' }).click();
  const error = page.locator(`#${await payload.getAttribute('id')}-error`);
  await error.waitFor();
  assert.match(await error.textContent(), /not valid JSON/);
  await payload.fill(JSON.stringify({ message: 'Roll back api to 2.4.0', event_type: 'deploy.rollback' }, null, 2));
  await page.getByRole('button', { name: 'Send test event' }).click();
  const outcome = page.locator('.test-outcome');
  await outcome.waitFor();
  assert.match(await outcome.textContent(), /Accepted.*HTTP 202/);
  // Focus stays on the result, in view, rather than dropping to the page.
  assert.ok(await outcome.evaluate((el) => el === document.activeElement), 'the test result has the focus');
  assert.ok(await outcome.evaluate((el) => {
    const box = el.getBoundingClientRect();
    return box.top >= 0 && box.bottom <= window.innerHeight;
  }), 'the test result is in view');
  await shot('webhook', { fullPage: true });
  await outcome.getByRole('link', { name: 'Open the task' }).click();
  await heading('Roll back api to 2.4.0');
  await waitForText('.title-row', 'Queued');
  await shot('task');
  await page.getByRole('link', { name: 'Deploy bot' }).first().click();
  await heading('Task board');
  const card = page.locator('[data-status="queued"] .task-card').filter({ hasText: 'Roll back api to 2.4.0' });
  await card.waitFor();
  await page.locator('[data-status="queued"] .task-card').filter({ hasText: 'Deploy api to production' }).waitFor();
  await waitForText('.board-status', 'Updated');
  // The board refreshes itself: a task moved through the API shows in its new column.
  const tasks = await http('GET', `${server.base}/api/v1/tasks?status=queued`, { headers: { Authorization: `Bearer ${server.adminKey}` } });
  const deploy = tasks.json.items.find((task) => task.instruction === 'Deploy api to production');
  const moved = await http('PATCH', `${server.base}/api/v1/tasks/${deploy.id}`, {
    headers: { Authorization: `Bearer ${server.adminKey}`, 'Content-Type': 'application/json' }, body: { status: 'delivered' },
  });
  assert.equal(moved.status, 200);
  await page.locator('[data-status="delivered"] .task-card').filter({ hasText: 'Deploy api to production' }).waitFor();
  await shot('board');

  // The task page is live too, and a task that is not queued waits for no attempt.
  await page.locator('[data-status="delivered"] .task-card').filter({ hasText: 'Deploy api to production' }).click();
  await heading('Deploy api to production');
  await waitForText('.title-row', 'Delivered');
  assert.equal(await page.locator('dt', { hasText: 'Next attempt' }).count(), 0);
  const started = await http('PATCH', `${server.base}/api/v1/tasks/${deploy.id}`, { headers: adminHeaders(), body: { status: 'in_progress' } });
  assert.equal(started.status, 200);
  await waitForText('.title-row', 'In progress');
});

step('a webhook’s details are edited in place; every mistake shows at once, in the form’s words', async () => {
  await page.goto(`${server.base}/#/webhooks/${seen.webhookId}`);
  await heading('CI pipeline');
  await page.getByRole('button', { name: 'Edit', exact: true }).click();
  const form = page.locator('form.edit-form');
  const name = form.getByLabel('Name');
  await name.waitFor();
  assert.ok(await name.evaluate((el) => el === document.activeElement), 'editing starts on the first field');
  const events = form.getByLabel('Event types');
  assert.equal(await events.inputValue(), 'deploy.*');
  await name.fill('');
  await events.fill('deploy.*, release.published, bad type!');
  await form.getByLabel('Rate limit per minute').fill('0');
  await form.getByRole('button', { name: 'Save changes' }).click();
  const summary = form.locator('.form-error');
  await summary.waitFor();
  assert.equal(await summary.textContent(), '3 fields need a change: Name, Event types, Rate limit per minute.');
  assert.equal(await page.locator(`#${await name.getAttribute('id')}-error`).textContent(), 'Name is required.');
  assert.equal(await page.locator(`#${await events.getAttribute('id')}-error`).textContent(),
    'Event type 3 (“bad type!”) may contain only letters, digits and . _ - : /, with an optional trailing .*.');
  assert.ok(await name.evaluate((el) => el === document.activeElement), 'focus goes to the first mistake');
  assert.ok(!(await form.textContent()).includes('`'), 'no code marks in the messages');
  await shot('webhook-edit');
  await name.fill('CI pipeline');
  await events.fill('deploy.*, release.published');
  await form.getByLabel('Rate limit per minute').fill('120');
  const saved = page.waitForResponse((r) => r.url().endsWith(`/api/v1/webhooks/${seen.webhookId}`) && r.request().method() === 'PATCH');
  await form.getByRole('button', { name: 'Save changes' }).click();
  // Only what changed is sent.
  assert.deepEqual(JSON.parse((await saved).request().postData()), { event_types: ['deploy.*', 'release.published'], rate_limit_per_minute: 120 });
  await waitForText('dd .chip', 'release.published');
  await waitForText('dd', '120 requests per minute');
  assert.ok(await page.getByRole('button', { name: 'Edit', exact: true }).evaluate((el) => el === document.activeElement), 'focus comes back to Edit');
  const stored = await http('GET', `${server.base}/api/v1/webhooks/${seen.webhookId}`, { headers: adminHeaders() });
  assert.deepEqual(stored.json.event_types, ['deploy.*', 'release.published']);
  // Escape leaves the form unchanged.
  await page.getByRole('button', { name: 'Edit', exact: true }).click();
  await form.getByLabel('Name').fill('Something else');
  await page.keyboard.press('Escape');
  await form.waitFor({ state: 'detached' });
  await heading('CI pipeline');
});

step('a disabled webhook refuses senders with 403, and the log shows it', async () => {
  await page.goto(`${server.base}/#/webhooks/${seen.webhookId}`);
  const toggle = page.getByRole('switch', { name: 'Accepting events' });
  assert.equal(await toggle.getAttribute('aria-checked'), 'true');
  await toggle.click();
  await page.locator('.title-row .badge-disabled').waitFor();
  assert.equal(await page.getByRole('switch', { name: 'Accepting events' }).getAttribute('aria-checked'), 'false');
  const refused = await http('POST', seen.url, {
    headers: { 'Content-Type': 'application/json', 'X-Webhook-Secret': seen.secret },
    body: { message: 'Should be refused', event_type: 'deploy.finished' },
  });
  assert.equal(refused.status, 403);
  assert.equal(refused.json.code, 'webhook_disabled');
  // Refused requests are coalesced in memory and written about once a second: wait for the
  // entry through the API, then read it in the console.
  await until(async () => {
    const log = await http('GET', `${server.base}/api/v1/webhooks/${seen.webhookId}/invocations?outcome=rejected`, {
      headers: { Authorization: `Bearer ${server.adminKey}` },
    });
    return log.json.items.length > 0;
  }, 'the refused request in the invocation log');
  await page.getByRole('link', { name: 'Invocation log' }).click();
  await page.locator('.log > li').nth(2).waitFor();
  await filter('Rejected');
  await page.waitForURL(/outcome=rejected$/);
  const entry = page.locator('.log > li').filter({ hasText: 'webhook_disabled' });
  await entry.waitFor();
  await logRows(1);
  assert.equal(await page.evaluate(() => document.activeElement.value), 'rejected', 'focus stays on the filter');
  assert.match(await entry.textContent(), /Rejected.*HTTP 403/);
  // Refused before its body was read: the log says so rather than "no JSON".
  await entry.locator('summary').click();
  await entry.getByText('Body not read').waitFor();
  assert.ok(!(await entry.textContent()).includes('No JSON object was received'));
  await filter('Failed');
  await page.waitForURL(/outcome=failed$/);
  await page.locator('.log > li').filter({ hasText: 'webhook_disabled' }).waitFor();
  await filter('Ignored');
  await waitForText('.empty', 'No ignored invocations');
  await filter('All');
  await page.locator('.log > li').nth(2).waitFor();
  const order = await page.locator('.log > li time').evaluateAll((times) => times.map((t) => t.getAttribute('datetime')));
  assert.deepEqual(order, [...order].sort().reverse(), 'newest first');
  await page.locator('.log > li').filter({ hasText: 'deploy.rollback' }).locator('summary').click();
  await shot('log');
  await fitsEveryWidth(() => page.locator('.log > li').filter({ hasText: 'deploy.rollback' }).locator('.expanded').waitFor());
  await page.setViewportSize(NARROW);
  await shot('log-390', { fullPage: true });
  await page.setViewportSize(WIDE);
});

step('delete asks for a confirmation naming the webhook, then the URL answers 410', async () => {
  await page.getByRole('link', { name: 'Overview' }).click();
  await page.getByRole('button', { name: 'Delete', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Delete webhook “CI pipeline”?' });
  await dialog.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Cancel', 'a destructive dialog starts on Cancel');
  await shot('delete-webhook');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  assert.equal((await http('POST', seen.url, { headers: { 'Content-Type': 'application/json', 'X-Webhook-Secret': seen.secret }, body: {} })).status, 403);
  await page.getByRole('button', { name: 'Delete', exact: true }).click();
  await dialog.getByRole('button', { name: 'Delete “CI pipeline”' }).click();
  await heading('Webhooks');
  await waitForText('.empty', 'No webhooks yet');
  const gone = await http('POST', seen.url, { headers: { 'Content-Type': 'application/json', 'X-Webhook-Secret': seen.secret }, body: {} });
  assert.equal(gone.status, 410);
  assert.equal(gone.json.code, 'webhook_deleted');

  // The deleted webhook is listed under Deleted; its page, its log and its requests read, and
  // nothing on them writes.
  await filter('Deleted');
  await page.waitForURL(/#\/webhooks\?status=deleted$/);
  const tombstone = page.locator('table.list tbody tr').filter({ hasText: 'CI pipeline' });
  await tombstone.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.value), 'deleted', 'focus stays on the filter');
  await tombstone.locator('.badge-deleted').waitFor();
  await tombstone.getByRole('link', { name: 'CI pipeline' }).click();
  await heading('CI pipeline');
  await page.locator('.title-row .badge-deleted').waitFor();
  await waitForText('[data-deleted]', 'its URL answers 410 Gone');
  const writes = async () => {
    assert.equal(await page.getByRole('button', { name: /^(Edit|Delete|Rotate secret|Send test event|Replay)/ }).count(), 0, 'a write button on a deleted webhook');
    assert.equal(await page.getByRole('switch').count(), 0, 'a status switch on a deleted webhook');
  };
  await writes();
  assert.equal(await page.getByRole('link', { name: 'Deleted webhooks' }).getAttribute('href'), '#/webhooks?status=deleted');
  await page.getByRole('link', { name: 'Invocation log' }).click();
  await waitForText('[data-deleted]', 'answers 410 Gone');
  const rollback = page.locator('.log > li').filter({ hasText: 'deploy.rollback' });
  await rollback.locator('summary').click();
  await rollback.locator('pre.json').filter({ hasText: 'Roll back api to 2.4.0' }).waitFor();
  await writes();
  await rollback.getByRole('link', { name: /^Open the whole request/ }).click();
  await heading('deploy.rollback');
  await page.locator('.card pre.json').filter({ hasText: 'Roll back api to 2.4.0' }).waitFor();
  // Its request page keeps Replay in view, disabled, saying why; nothing else on it writes.
  await waitForText('#replay-blocked', 'Its webhook is deleted');
  assert.equal(await page.getByRole('button', { name: 'Replay' }).isDisabled(), true);
  assert.equal(await page.getByRole('button', { name: /^(Edit|Delete|Rotate secret|Send test event|Retry)/ }).count(), 0, 'a write button on a deleted webhook');
  await page.getByRole('link', { name: 'Deleted webhooks' }).click();
  await tombstone.waitFor();
  await filter('All');
  await page.waitForURL(/#\/webhooks$/);
  await waitForText('.empty', 'No webhooks yet');
});

step('targets page lists and deletes; a viewer key sees everything read-only', async () => {
  await nav('Targets').click();
  await heading('Targets');
  await waitForText('table.list td', 'Deploy bot');
  await shot('targets');
  const viewer = await http('POST', `${server.base}/api/v1/api-keys`, {
    headers: { Authorization: `Bearer ${server.adminKey}`, 'Content-Type': 'application/json' }, body: { name: 'dashboard', role: 'viewer' },
  });
  assert.equal(viewer.status, 201);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await heading('Sign in');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('webhookd.apiKey')), null);
  await page.getByLabel('API key').fill(viewer.json.api_key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  // Signing in again comes back to the page that was open.
  await heading('Targets');
  await waitForText('#role-badge', 'Read-only');
  await waitForText('.callout', 'read-only key');
  await waitForText('table.list td', 'Deploy bot');
  assert.equal(await page.getByRole('button', { name: /Delete/ }).count(), 0);
  assert.equal(await page.getByRole('button', { name: 'Create Target' }).count(), 0);
  await nav('Webhooks').click();
  await heading('Webhooks');
  await waitForText('.empty', 'An admin creates webhooks');
  assert.equal(await page.getByRole('button', { name: 'Create Webhook' }).count(), 0);

  // Back as admin: the target, now unused, is deleted after a confirmation naming it.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('API key').fill(server.adminKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitForText('#role-badge', 'Admin');
  await nav('Targets').click();
  await page.getByRole('button', { name: 'Delete Deploy bot' }).click();
  await page.getByRole('dialog', { name: 'Delete target “Deploy bot”?' }).getByRole('button', { name: 'Delete “Deploy bot”' }).click();
  await waitForText('.empty', 'No targets yet');
  assert.deepEqual(seen.pageErrors, [], 'no script errors on any page');
});

step('a GitHub webhook shows GitHub’s setup steps with its URL and secret; duplicates and rotation show in the console', async () => {
  const auth = { Authorization: `Bearer ${server.adminKey}`, 'Content-Type': 'application/json' };
  const target = await http('POST', `${server.base}/api/v1/targets`, { headers: auth, body: { kind: 'agent', name: 'Review bot' } });
  assert.equal(target.status, 201);
  await nav('Webhooks').click();
  await heading('Webhooks');
  await page.getByRole('button', { name: 'Create Webhook' }).first().click();
  const dialog = page.getByRole('dialog', { name: 'Create webhook' });
  await dialog.getByLabel('Name').fill('Repository events');
  await dialog.getByLabel('Target').selectOption({ label: 'Review bot (agent)' });
  await dialog.getByLabel('Sender').selectOption({ label: 'GitHub' });
  // The hint says what webhookd checks; GitHub signs with a secret webhookd generates.
  await dialog.getByText('X-Hub-Signature-256').waitFor();
  assert.equal(await dialog.getByLabel('Generate one for me').isChecked(), true);
  await dialog.getByLabel('Event types').fill('pull_request.*');
  await dialog.getByText('Advanced', { exact: true }).click();
  await dialog.getByLabel('Instruction template').fill('Review {{ pull_request.title }} in {{ repository.full_name }}');
  await dialog.getByLabel('Allowed source IPs').fill('127.0.0.1/32\n::1/128');
  await shot('create-webhook-github');
  const answer = page.waitForResponse((r) => r.url().endsWith('/api/v1/webhooks') && r.request().method() === 'POST');
  await dialog.getByRole('button', { name: 'Create webhook' }).click();
  const made = await (await answer).json();
  assert.equal(made.source, 'github', JSON.stringify(made));
  assert.deepEqual(made.allowed_source_ips, ['127.0.0.1/32', '::1/128']);

  // GitHub's own words and fields, with the URL and the secret to paste into them.
  const created = page.getByRole('dialog', { name: 'Webhook created' });
  const steps = created.locator('.setup');
  await steps.getByRole('heading', { name: 'Set up GitHub' }).waitFor();
  const text = await steps.textContent();
  for (const part of ['Settings → Webhooks → Add webhook', 'Payload URL', 'application/json', 'Secret']) {
    assert.ok(text.includes(part), `${part} missing from the steps: ${text}`);
  }
  assert.ok(!text.includes('X-Hub-Signature-256'), 'the steps speak GitHub’s words, not its headers');
  const url = await steps.getByLabel('Payload URL', { exact: true }).inputValue();
  const secret = await steps.getByLabel('Secret', { exact: true }).inputValue();
  assert.equal(url, made.url);
  assert.equal(secret, made.secret);
  await created.getByText('you will not see this again').waitFor();
  await steps.getByRole('button', { name: 'Copy payload url' }).click();
  assert.equal(await clipboard(), url);
  await shot('webhook-created-github');
  await page.setViewportSize(NARROW);
  assert.ok(await created.evaluate((d) => d.scrollWidth <= d.clientWidth), 'the dialog scrolls sideways at 390 px');
  await page.setViewportSize(WIDE);
  await created.getByRole('button', { name: 'Done' }).click();
  await heading('Repository events');

  // Its page: the sender, the template, the networks, and the steps without the secret.
  assert.equal(await page.locator('[data-prop="source"]').textContent(), 'GitHub');
  await waitForText('[data-prop="instruction"]', 'Review {{ pull_request.title }}');
  await waitForText('[data-prop="allowed_source_ips"]', '::1/128');
  const setup = page.locator('section.setup');
  assert.equal(await setup.getByLabel('Payload URL', { exact: true }).inputValue(), url);
  assert.ok(!(await setup.textContent()).includes(secret), 'the secret is shown only once');

  // GitHub delivers the same event twice: the second is a duplicate of the first.
  const body = JSON.stringify({ action: 'opened', pull_request: { title: 'Add retries' }, repository: { full_name: 'acme/api' } });
  const github = (key, delivery) => ({
    'Content-Type': 'application/json',
    'X-GitHub-Event': 'pull_request',
    'X-GitHub-Delivery': delivery,
    'X-Hub-Signature-256': `sha256=${createHmac('sha256', key).update(body).digest('hex')}`,
  });
  const first = await http('POST', url, { headers: github(secret, 'a1b2c3d4-0000-4000-8000-000000000001'), raw: body });
  assert.equal(first.status, 202, JSON.stringify(first.json));
  const again = await http('POST', url, { headers: github(secret, 'a1b2c3d4-0000-4000-8000-000000000001'), raw: body });
  assert.equal(again.status, 200, JSON.stringify(again.json));
  assert.equal(again.json.status, 'duplicate');
  assert.equal(again.json.invocation_id, first.json.invocation_id);
  const task = await http('GET', `${server.base}/api/v1/tasks/${first.json.task_id}`, { headers: auth });
  assert.equal(task.json.instruction, 'Review Add retries in acme/api');
  assert.equal(task.json.source.provider, 'github');
  await until(async () => {
    const log = await http('GET', `${server.base}/api/v1/webhooks/${made.id}/invocations?outcome=duplicate`, { headers: auth });
    return log.json.items.length > 0;
  }, 'the duplicate in the invocation log');

  await page.getByRole('link', { name: 'Invocation log' }).click();
  await filter('Duplicate');
  await page.waitForURL(/outcome=duplicate$/);
  const duplicate = page.locator('.log > li').filter({ hasText: 'Duplicate' });
  await duplicate.waitFor();
  await logRows(1);
  assert.match(await duplicate.locator('summary').textContent(), /Duplicate.*HTTP 200.*duplicate of/);
  await shot('log-duplicate');
  await duplicate.getByRole('link', { name: `Duplicate of invocation ${first.json.invocation_id}` }).click();
  await heading('pull_request.opened');
  await waitForText('.title-row', 'Accepted');
  await page.getByRole('link', { name: 'Open the task' }).click();
  await heading('Review Add retries in acme/api');
  await waitForText('dd', 'GitHub · Verified sender');

  // Rotation with an overlap: both secrets verify until the old one expires.
  await page.goto(`${server.base}/#/webhooks/${made.id}`);
  await page.getByRole('button', { name: 'Rotate secret' }).click();
  const rotate = page.getByRole('dialog', { name: 'Rotate the secret?' });
  await rotate.locator('.segmented label').filter({ hasText: '24 hours' }).click();
  await shot('rotate-secret');
  await rotate.getByRole('button', { name: 'Rotate secret' }).click();
  const rotated = page.getByRole('dialog', { name: 'New secret' });
  const fresh = await rotated.getByLabel('Secret', { exact: true }).inputValue();
  assert.notEqual(fresh, secret);
  await rotated.getByText('The old secret keeps working until').waitFor();
  await rotated.getByRole('button', { name: 'Done' }).click();
  await waitForText('[data-previous-secret]', 'The previous secret also works until');
  for (const [key, delivery] of [[secret, 'a1b2c3d4-0000-4000-8000-000000000002'], [fresh, 'a1b2c3d4-0000-4000-8000-000000000003']]) {
    const sent = await http('POST', url, { headers: github(key, delivery), raw: body });
    assert.equal(sent.status, 202, JSON.stringify(sent.json));
  }
  assert.deepEqual(seen.pageErrors, [], 'no script errors on any page');
});

step('the board shows every target at once and more than 50 per column', async () => {
  const ops = await http('POST', `${server.base}/api/v1/targets`, { headers: adminHeaders(), body: { kind: 'team', name: 'Ops team' } });
  assert.equal(ops.status, 201);
  const review = (await http('GET', `${server.base}/api/v1/targets`, { headers: adminHeaders() })).json.items.find((t) => t.name === 'Review bot');
  const alerts = await http('POST', `${server.base}/api/v1/webhooks`, { headers: adminHeaders(), body: { name: 'Alerts', target_id: ops.json.id, generate_secret: true } });
  const bulk = await http('POST', `${server.base}/api/v1/webhooks`, { headers: adminHeaders(), body: { name: 'Bulk', target_id: review.id, generate_secret: true } });
  assert.equal(alerts.status, 201);
  assert.equal(bulk.status, 201);
  seen.bulk = bulk.json;
  const send = (webhook, message) => http('POST', webhook.url, {
    headers: { 'Content-Type': 'application/json', 'X-Webhook-Secret': webhook.secret }, body: { message, event_type: 'batch.item' },
  });
  for (let batch = 0; batch < 6; batch += 1) {
    const sent = await Promise.all(Array.from({ length: 10 }, (_, i) => send(bulk.json, `Batch item ${batch * 10 + i + 1}`)));
    assert.deepEqual(sent.map((r) => r.status), Array(10).fill(202));
  }
  // The newest, so on the first page.
  assert.equal((await send(alerts.json, 'Page the on-call engineer')).status, 202);
  const queued = async () => {
    let count = 0;
    let cursor = '';
    do {
      const answer = await http('GET', `${server.base}/api/v1/tasks?status=queued&limit=500${cursor}`, { headers: adminHeaders() });
      count += answer.json.items.length;
      cursor = answer.json.next_cursor ? `&cursor=${encodeURIComponent(answer.json.next_cursor)}` : '';
    } while (cursor);
    return count;
  };
  const total = await queued();
  assert.ok(total > 50, `${total} queued tasks`);

  await nav('Task board').click();
  await heading('Task board');
  assert.equal(await page.getByLabel('Target').locator('option:checked').textContent(), 'All targets');
  const column = page.locator('[data-status="queued"]');
  await column.locator('.task-card').filter({ hasText: 'Page the on-call engineer' }).waitFor();
  await until(async () => (await column.locator('.count').textContent()) === '50+', 'a full first page in the queued column');
  // Cards say whose they are when every target shows.
  await column.locator('.task-card').filter({ hasText: 'Page the on-call engineer' }).locator('.card-target', { hasText: 'Ops team' }).waitFor();
  await column.locator('.task-card .card-target', { hasText: 'Review bot' }).first().waitFor();
  await shot('board-all');
  await column.getByRole('button', { name: 'Load more queued tasks' }).click();
  await until(async () => (await column.locator('.count').textContent()) === String(total), `all ${total} queued tasks`);
  assert.equal(await column.locator('.task-card').count(), total);
  // Nothing more to load: the button goes, and the last card has the focus.
  assert.equal(await column.getByRole('button', { name: 'Load more queued tasks' }).isVisible(), false);
  assert.ok(await column.locator('.task-card').last().evaluate((el) => el === document.activeElement));
  await fitsEveryWidth(() => column.locator('.task-card').first().waitFor());

  // One target's board from the same select.
  await page.getByLabel('Target').selectOption({ label: 'Ops team (team)' });
  await page.waitForURL(new RegExp(`#/board/${ops.json.id}$`));
  await until(async () => (await column.locator('.count').textContent()) === '1', 'the Ops team board');
  // The focus goes back to the select once the page has read its first columns, which on a
  // busy machine can be after the count shows.
  await until(async () => (await page.evaluate(() => document.activeElement.id)) === 'board-target', 'the focus on the select');
});

step('targets are edited in place; deleting one in use names the webhooks that use it', async () => {
  await nav('Targets').click();
  await heading('Targets');
  await page.getByRole('button', { name: 'Delete Review bot' }).click();
  const inUse = page.getByRole('dialog', { name: '“Review bot” is in use' });
  await inUse.getByText('2 webhooks send their tasks to “Review bot”').waitFor();
  await inUse.getByRole('link', { name: 'Repository events' }).waitFor();
  await shot('target-in-use');
  await inUse.getByRole('link', { name: 'Bulk' }).click();
  await heading('Bulk');
  await inUse.waitFor({ state: 'detached' });

  await nav('Targets').click();
  await page.getByRole('button', { name: 'Edit Ops team' }).click();
  const edit = page.getByRole('dialog', { name: 'Edit target “Ops team”' });
  const name = edit.getByLabel('Name');
  const endpoint = edit.getByLabel('Endpoint URL');
  await name.fill(' ');
  await endpoint.fill('ftp://ops.example.com/tasks');
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await edit.getByText('2 fields need a change: Name, Endpoint URL.').waitFor();
  assert.equal(await page.locator(`#${await endpoint.getAttribute('id')}-error`).textContent(), 'Endpoint URL must use http or https.');
  await name.fill('Ops on-call');
  await endpoint.fill('');
  await edit.getByRole('button', { name: 'Save changes' }).click();
  await edit.waitFor({ state: 'detached' });
  await waitForText('table.list td', 'Ops on-call');
  assert.ok(await page.getByRole('button', { name: 'Edit Ops on-call' }).evaluate((el) => el === document.activeElement), 'focus comes back to Edit');
  assert.deepEqual(seen.pageErrors, [], 'no script errors on any page');
});

step('a refused request’s page shows its headers, redacted secrets and the problem sent back', async () => {
  // A target whose agent listens on loopback: the first delivery of “Release api 3.0” is
  // answered 503 and retried, “Release web 1.2” is refused for good (422) until retried by hand.
  seen.agent = await startAgent({ 'Release api 3.0': [503], 'Release web 1.2': [422] });
  const target = await http('POST', `${server.base}/api/v1/targets`, { headers: adminHeaders(), body: { kind: 'agent', name: 'Build agent', endpoint_url: seen.agent.url } });
  assert.equal(target.status, 201, JSON.stringify(target.json));
  const webhook = await http('POST', `${server.base}/api/v1/webhooks`, {
    headers: adminHeaders(), body: { name: 'Releases', target_id: target.json.id, generate_secret: true, event_types: ['release.*'] },
  });
  assert.equal(webhook.status, 201, JSON.stringify(webhook.json));
  seen.releases = webhook.json;
  seen.sendRelease = (raw, headers = {}) => http('POST', webhook.json.url, {
    headers: { 'Content-Type': 'application/json', 'X-Webhook-Secret': webhook.json.secret, ...headers }, raw,
  });
  // The accepted release goes first, so that its retry runs while the refused ones are read.
  seen.releaseBody = '{"message": "Release api 3.0",  "event_type": "release.published", "notes": "Faster retries"}';
  const release = await seen.sendRelease(seen.releaseBody, { 'X-Request-Id': 'rel-1' });
  assert.equal(release.status, 202, JSON.stringify(release.json));
  seen.release = release.json;
  const broken = await seen.sendRelease('{"message": nope}', { 'X-Request-Id': 'r-1' });
  assert.equal(broken.status, 400);
  assert.equal(broken.json.code, 'invalid_payload');
  const wrong = await seen.sendRelease('{"message": "Release from a stranger"}', { 'X-Webhook-Secret': 'not-the-secret-at-all' });
  assert.equal(wrong.status, 401);
  // Refusals of a wrong secret are coalesced and written about once a second.
  await until(async () => {
    const log = await http('GET', `${server.base}/api/v1/webhooks/${webhook.json.id}/invocations?outcome=rejected`, { headers: adminHeaders() });
    return log.json.items.length === 2;
  }, 'both refused requests in the log');

  await page.goto(`${server.base}/#/webhooks/${webhook.json.id}/log`);
  await heading('Releases');
  const row = page.locator('.log > li').filter({ hasText: 'invalid_payload' });
  await row.getByRole('link', { name: 'Open the request', exact: true }).click();
  await page.waitForURL(/#\/invocations\/[0-9a-f-]{36}$/);
  await heading('Request');
  // The headers as received; the secret marked redacted, its value nowhere on the page.
  const headers = page.locator('dl.headers');
  assert.equal(await headers.locator('dt:text-is("x-request-id") + dd').textContent(), 'r-1');
  assert.equal(await headers.locator('dt:text-is("content-type") + dd').textContent(), 'application/json');
  await headers.locator('dt:text-is("x-webhook-secret") + dd [data-redacted]').filter({ hasText: 'Redacted' }).waitFor();
  assert.ok(!(await page.locator('main').textContent()).includes(webhook.json.secret), 'the secret is not shown');
  // The problem exactly as the sender read it, and the body as it came.
  const answer = page.locator('[data-answer]');
  assert.equal(await answer.locator('[data-prop="status"]').textContent(), 'HTTP 400 · invalid_payload');
  assert.equal(await answer.locator('[data-prop="title"]').textContent(), broken.json.title);
  assert.equal(await answer.locator('[data-prop="detail"]').textContent(), broken.json.detail);
  assert.equal(await page.getByRole('region', { name: 'Request body' }).textContent(), '{"message": nope}');
  await page.locator('[data-body="not_json"]').waitFor();
  await waitForText('[data-step="end"]', 'Refused, so no task was made.');
  // Its body was kept whole, so it can be sent again.
  assert.equal(await page.getByRole('button', { name: 'Replay' }).isEnabled(), true);
  await shot('request');
  await fitsEveryWidth(() => headers.waitFor());

  // A request refused before its body was read says so, and cannot be replayed.
  await page.goBack();
  await heading('Releases');
  await page.locator('.log > li').filter({ hasText: 'invalid_secret' }).getByRole('link', { name: 'Open the request', exact: true }).click();
  await waitForText('[data-prop="status"]', 'HTTP 401 · invalid_secret');
  await waitForText('[data-body="not_read"]', 'Body not read');
  assert.equal(await page.getByRole('button', { name: 'Replay' }).isDisabled(), true);
  await waitForText('#replay-blocked', 'Not replayable: the request was refused before its body was read');
  assert.deepEqual(seen.pageErrors, [], 'no script errors on any page');
});

step('an accepted request’s page shows each delivery attempt; Replay sends it again and follows the new one', async () => {
  // The first attempt was answered 503 and retried within 5 s; then the agent reports progress.
  await until(async () => {
    const task = await http('GET', `${server.base}/api/v1/tasks/${seen.release.task_id}`, { headers: adminHeaders() });
    return task.json.status === 'delivered';
  }, 'the release delivered on its second attempt');
  for (const status of ['in_progress', 'completed']) {
    const moved = await http('PATCH', `${server.base}/api/v1/tasks/${seen.release.task_id}`, { headers: adminHeaders(), body: { status } });
    assert.equal(moved.status, 200, JSON.stringify(moved.json));
  }
  await page.goto(`${server.base}/#/invocations/${seen.release.invocation_id}`);
  await heading('release.published');
  // Both attempts, each with the agent's answer pretty-printed, and where the task stands.
  const first = page.locator('[data-attempt="1"]');
  const second = page.locator('[data-attempt="2"]');
  await second.waitFor();
  assert.match(await first.locator('.step-head').textContent(), /^Attempt 1HTTP 503[\d,]+ ms/);
  await first.locator('pre.json').filter({ hasText: '"error": "warming up, try again"' }).waitFor();
  assert.match(await second.locator('.step-head').textContent(), /^Attempt 2HTTP 200[\d,]+ ms/);
  await second.locator('pre.json').filter({ hasText: '"accepted": true' }).waitFor();
  await waitForText('[data-step="status"]', 'Completed');
  await waitForText('.title-row [data-delivery="delivered"]', 'Delivered');
  assert.equal(seen.agent.received.filter((t) => t.instruction === 'Release api 3.0').length, 2);
  const steps = await page.locator('ol.timeline > li').evaluateAll((items) => items.map((li) => li.dataset.step || `attempt ${li.dataset.attempt}`));
  assert.deepEqual(steps, ['received', 'task', 'attempt 1', 'attempt 2', 'status']);

  // The body pretty-printed, or raw as it came; Copy copies the view shown.
  const body = page.getByRole('region', { name: 'Request body' });
  assert.match(await body.textContent(), /^\{\n {2}"message": "Release api 3\.0",\n/);
  await page.locator('.segmented label').filter({ hasText: 'Raw' }).click();
  assert.equal(await body.textContent(), seen.releaseBody);
  await page.getByRole('button', { name: 'Copy body' }).click();
  assert.equal(await clipboard(), seen.releaseBody);
  assert.equal(await page.locator('dl.headers dt:text-is("x-request-id") + dd').textContent(), 'rel-1');
  await shot('request-timeline', { of: page.locator('.timeline-card') });
  await fitsEveryWidth(() => second.waitFor());

  // Replay: the same payload and headers through the pipeline again, as a new request.
  const replayed = page.waitForResponse((r) => r.url().endsWith(`/api/v1/invocations/${seen.release.invocation_id}/replay`));
  await page.getByRole('button', { name: 'Replay' }).click();
  const out = await (await replayed).json();
  assert.equal(out.status, 'accepted', JSON.stringify(out));
  await page.waitForURL(new RegExp(`#/invocations/${out.invocation_id}$`));
  await heading('release.published');
  await page.locator('.title-row').getByText('Replay', { exact: true }).waitFor();
  assert.equal(await page.locator('dl.headers dt:text-is("x-request-id") + dd').textContent(), 'rel-1');
  // The agent answers the replay's task at once, and the page follows it.
  await waitForText('[data-attempt="1"]', 'HTTP 200');
  await waitForText('[data-step="status"]', 'Delivered');
  assert.equal(await page.locator('[data-attempt]').count(), 1);
  await page.locator('[data-replay-of]').click();
  await page.waitForURL(new RegExp(`#/invocations/${seen.release.invocation_id}$`));
  await page.locator('[data-attempt="2"]').waitFor();

  // A task the agent refused: Retry puts it back in the queue, and the next attempt delivers it.
  const web = await seen.sendRelease('{"message": "Release web 1.2", "event_type": "release.published"}');
  assert.equal(web.status, 202, JSON.stringify(web.json));
  await page.goto(`${server.base}/#/invocations/${web.json.invocation_id}`);
  await waitForText('[data-attempt="1"] .step-head', 'HTTP 422');
  await waitForText('[data-step="status"]', 'Failed');
  await page.locator('[data-attempt="1"] pre.json').filter({ hasText: '"error": "unknown repository"' }).waitFor();
  assert.match(await page.locator('.title-row [data-delivery]').textContent(), /Delivery failed/);
  await page.getByRole('button', { name: 'Retry delivery' }).click();
  await waitForText('[data-attempt="2"] .step-head', 'HTTP 200');
  await waitForText('[data-step="status"]', 'Delivered');
  assert.equal(await page.getByRole('button', { name: 'Retry delivery' }).count(), 0);
  // The task page lists the same attempts.
  await page.getByRole('link', { name: 'Open the task' }).click();
  await heading('Release web 1.2');
  await waitForText('[data-attempt="2"]', 'HTTP 200');
  assert.match(await page.locator('[data-attempt="1"]').textContent(), /HTTP 422/);

  // A viewer key sees the request, without Replay or Retry.
  const viewer = await http('POST', `${server.base}/api/v1/api-keys`, { headers: adminHeaders(), body: { name: 'request viewer', role: 'viewer' } });
  assert.equal(viewer.status, 201);
  const tab = await context.newPage();
  try {
    await tab.goto(`${server.base}/#/invocations/${seen.release.invocation_id}`);
    await tab.getByLabel('API key').fill(viewer.json.api_key);
    await tab.getByRole('button', { name: 'Sign in' }).click();
    await tab.getByRole('heading', { level: 1, name: 'release.published' }).waitFor();
    await tab.locator('[data-attempt="2"]').waitFor();
    assert.equal(await tab.getByRole('button', { name: /Replay|Retry/ }).count(), 0);
  } finally {
    await tab.close();
  }
  assert.deepEqual(seen.pageErrors, [], 'no script errors on any page');
});

step('the log is searched by a word of the payload and filtered, with a link to the result', async () => {
  await page.goto(`${server.base}/#/webhooks/${seen.releases.id}/log`);
  await heading('Releases');
  await logRows(5);
  const search = page.getByLabel('Search', { exact: true });
  await search.fill('FASTER');
  await search.press('Enter');
  await page.waitForURL(/\/log\?q=FASTER$/);
  // The release and its replay, whose notes say “Faster retries”; case does not count.
  await logRows(2);
  for (const text of await page.locator('.log > li summary').allTextContents()) assert.match(text, /Release api 3\.0/);
  assert.ok(await search.evaluate((el) => el === document.activeElement), 'focus stays in the search box');
  assert.equal(await search.inputValue(), 'FASTER');

  // With the other filters and the outcome; the URL holds them all. They fold away until used.
  const today = await page.evaluate(() => new Date().toLocaleDateString('sv'));
  assert.equal(await page.getByLabel('Event type').isVisible(), false);
  await page.locator('.more-filters summary').click();
  await page.getByLabel('Event type').fill('release.published');
  await page.getByLabel('Since').fill(today);
  await page.getByLabel('Until').fill(today);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.waitForURL(new RegExp(`\\?q=FASTER&event_type=release\\.published&since=${today}&until=${today}$`));
  await logRows(2);
  await filter('Accepted');
  await page.waitForURL(new RegExp(`\\?outcome=accepted&q=FASTER&event_type=release\\.published&since=${today}&until=${today}$`));
  await logRows(2);
  await shot('log-search');
  await fitsEveryWidth(() => page.locator('.log > li').first().waitFor());
  // A replay comes from no address: the source IP keeps only the original.
  await page.getByLabel('Source IP').fill('127.0.0.1');
  await page.getByLabel('Source IP').press('Enter');
  await page.waitForURL(/&source_ip=127\.0\.0\.1&since=/);
  await logRows(1);
  // The link opens the same search.
  const link = page.url();
  await page.goto(`${server.base}/#/webhooks/${seen.releases.id}`);
  await heading('Releases');
  await page.goto(link);
  await logRows(1);
  assert.equal(await page.getByLabel('Source IP').inputValue(), '127.0.0.1');
  assert.equal(await page.getByLabel('Since').inputValue(), today);

  // Test events only: none here, said plainly.
  await page.getByLabel('Test events').selectOption({ label: 'Only test events' });
  await page.waitForURL(/&test=true$/);
  await waitForText('.empty', 'No results');
  assert.match(await page.locator('.empty').textContent(), /No accepted invocations match words “FASTER”, event type release\.published, source IP 127\.0\.0\.1, received \S+ to \S+, test events only\./);
  await fitsEveryWidth(() => page.locator('.empty').waitFor());
  // A word found nowhere.
  await page.getByRole('link', { name: 'Clear search and filters' }).first().click();
  await page.waitForURL(/\/log\?outcome=accepted$/);
  await logRows(3);
  await search.fill('zebra');
  await search.press('Enter');
  await waitForText('.empty', 'No accepted invocations match words “zebra”.');
  // A filter the API refuses shows next to its field, in the form's words.
  await filter('All');
  await page.locator('.more-filters summary').click();
  await page.getByLabel('Source IP').fill('not-an-address');
  await page.getByLabel('Source IP').press('Enter');
  const error = page.locator(`#${await page.getByLabel('Source IP').getAttribute('id')}-error`);
  await error.waitFor();
  assert.match(await error.textContent(), /^Source IP /);
  assert.ok(!(await error.textContent()).includes('`'));
  assert.deepEqual(seen.pageErrors, [], 'no script errors on any page');
});

step('Replay says plainly why it cannot send a request again', async () => {
  // A disabled webhook refuses the replay as it would the sender: the page says what it answered.
  const disabled = await http('PATCH', `${server.base}/api/v1/webhooks/${seen.releases.id}`, { headers: adminHeaders(), body: { status: 'disabled' } });
  assert.equal(disabled.status, 200, JSON.stringify(disabled.json));
  await page.goto(`${server.base}/#/invocations/${seen.release.invocation_id}`);
  await heading('release.published');
  await page.getByRole('button', { name: 'Replay' }).click();
  const refused = page.locator('[data-replay="rejected"]');
  await refused.waitFor();
  assert.match(await refused.textContent(), /^The replay was refused: HTTP 403 · webhook_disabled\. .*See it in the log$/);
  assert.ok(page.url().endsWith(`#/invocations/${seen.release.invocation_id}`), 'the page stays on the request');
  // A deleted webhook's requests cannot be sent again: the button says why before it is pressed.
  const deleted = await http('GET', `${server.base}/api/v1/webhooks/${seen.webhookId}/invocations?outcome=accepted&limit=1`, { headers: adminHeaders() });
  await page.goto(`${server.base}/#/invocations/${deleted.json.items[0].id}`);
  await waitForText('#replay-blocked', 'Its webhook is deleted');
  assert.equal(await page.getByRole('button', { name: 'Replay' }).isDisabled(), true);
  assert.deepEqual(seen.pageErrors, [], 'no script errors on any page');
});

step('the list shows each webhook’s last 24 hours: a refused request counts as failed', async () => {
  const webhooks = (await http('GET', `${server.base}/api/v1/webhooks`, { headers: adminHeaders() })).json.items;
  const alerts = webhooks.find((w) => w.name === 'Alerts');
  const refused = await http('POST', alerts.url, {
    headers: { 'Content-Type': 'application/json', 'X-Webhook-Secret': 'not-the-secret' }, body: { message: 'Forged' },
  });
  assert.equal(refused.status, 401, JSON.stringify(refused.json));
  // Refused requests are written about once a second: wait for the count through the API.
  await until(async () => {
    const read = await http('GET', `${server.base}/api/v1/webhooks/${alerts.id}`, { headers: adminHeaders() });
    return read.json.health.failed_24h === 1;
  }, 'the refused request in the health of Alerts');
  await nav('Webhooks').click();
  await heading('Webhooks');
  const row = page.locator('table.list tbody tr').filter({ hasText: 'Alerts' });
  const failing = row.locator('[data-health="failing"]');
  await failing.waitFor();
  assert.match(await failing.textContent(), /^1 failed · 1 accepted\s*Last failure (just now|\d+ min ago)$/);
  assert.match(await failing.locator('time').getAttribute('title'), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  // Marked by an icon and words, not only a colour.
  await failing.locator('svg.icon-alert').waitFor();
  const bulk = page.locator('table.list tbody tr').filter({ hasText: 'Bulk' }).locator('[data-health="ok"]');
  assert.equal(await bulk.textContent(), '60 acceptedNo failures');
  await shot('webhooks');
  await fitsEveryWidth(() => failing.waitFor());
  await page.setViewportSize(NARROW);
  await shot('webhooks-390', { fullPage: true });
  await page.setViewportSize(WIDE);
  // The count leads to the failed requests.
  await failing.getByRole('link', { name: '1 failed' }).click();
  await page.waitForURL(new RegExp(`#/webhooks/${alerts.id}/log\\?outcome=failed$`));
  await logRows(1);
  assert.deepEqual(seen.pageErrors, [], 'no script errors on any page');
});

step('dark mode follows the system setting', async () => {
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto(`${server.base}/#/webhooks/${seen.bulk.id}/log`);
  await heading('Bulk');
  await page.locator('.log > li').first().locator('summary').click();
  await page.locator('.log > li').first().locator('pre.json').waitFor();
  const luminance = (color) => {
    const [r, g, b] = color.match(/\d+(\.\d+)?/g).map(Number);
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
  };
  const [background, text, card] = await page.evaluate(() => [
    getComputedStyle(document.body).backgroundColor,
    getComputedStyle(document.body).color,
    getComputedStyle(document.querySelector('.card')).backgroundColor,
  ]);
  assert.ok(luminance(background) < 0.15, `a dark page: ${background}`);
  assert.ok(luminance(card) < 0.2, `dark cards: ${card}`);
  assert.ok(luminance(text) > 0.75, `light text: ${text}`);
  await shot('log-dark');
  await fitsEveryWidth(() => page.locator('.log > li').first().waitFor());
  await page.goto(`${server.base}/#/invocations/${seen.release.invocation_id}`);
  await heading('release.published');
  await page.locator('[data-attempt="2"] pre.json').waitFor();
  assert.ok(luminance(await page.locator('.timeline-card').evaluate((el) => getComputedStyle(el).backgroundColor)) < 0.2, 'a dark timeline');
  await shot('request-dark');
  await fitsEveryWidth(() => page.locator('[data-attempt="2"]').waitFor());
  await page.emulateMedia({ colorScheme: 'light' });
  assert.deepEqual(seen.pageErrors, [], 'no script errors on any page');
});
