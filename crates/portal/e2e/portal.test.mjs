// Drives the customer portal in a real headless Chromium against the real `orderflow serve`:
// places an order and watches it become STORED, shows the API's field errors, survives a
// network failure, and lists and charts what happened. Screenshots go to artifacts/portal/.
//
// Run with ./scripts/test-portal (installs Chromium, builds the binary). Environment:
//   ORDERFLOW_BIN     the binary (default: target/debug/orderflow)
//   CHROMIUM_PATH     the browser (default: /usr/bin/chromium, Debian's package)
//   PORTAL_ARTIFACTS  where screenshots go (default: artifacts/portal)

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const BINARY = process.env.ORDERFLOW_BIN ?? path.join(ROOT, 'target/debug/orderflow');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = process.env.PORTAL_ARTIFACTS ?? path.join(ROOT, 'artifacts/portal');
const STARTUP_TIMEOUT_MS = 30_000;
const STEP_TIMEOUT_MS = 15_000;

// Without the background-networking flags Chromium keeps calling Google's hosts, which this
// kind of machine refuses. Playwright gives every launch a fresh, empty profile directory.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let server;
let browser;
let baseUrl;
let dataDir;
/** Everything the browser said that a user or a developer would call a problem. */
const problems = [];
/** The order placed by the first test, used by the later ones. */
let placedOrderId;

// ---- the real server ----------------------------------------------------------------------

async function startServer(extraEnv = {}) {
  const dir = await mkdtemp(path.join(tmpdir(), 'orderflow-portal-e2e-'));
  dataDir ??= dir;
  const child = spawn(BINARY, ['serve', '--addr', '127.0.0.1:0', '--data-dir', dir], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start in ${STARTUP_TIMEOUT_MS} ms:\n${output}`)), STARTUP_TIMEOUT_MS);
    const onData = (chunk) => {
      output += chunk;
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited with ${code} before listening:\n${output}`));
    });
  });
  return { child, url };
}

async function stopServer(child) {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

async function api(pathAndQuery) {
  const response = await fetch(baseUrl + pathAndQuery, { signal: AbortSignal.timeout(5000) });
  return { status: response.status, text: await response.text() };
}

// ---- the browser ----------------------------------------------------------------------------

function isApiUrl(url) {
  const { origin, pathname } = new URL(url);
  return origin === baseUrl && (pathname === '/orders' || pathname.startsWith('/orders/'));
}

/** A page that reports CSP violations, script errors and failed loads into `problems`. */
async function newPage(context, name) {
  const page = await context.newPage();
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI}`);
    });
  });
  page.on('console', (message) => {
    if (message.type() !== 'error' && message.type() !== 'warning') return;
    const text = message.text();
    const url = message.location()?.url ?? '';
    // The API answering 400 (invalid order), 404 (not stored yet) or a request we cut off
    // on purpose is the page working; Chromium logs each as a failed resource load.
    if (text.startsWith('Failed to load resource') && url && isApiUrl(url)) return;
    problems.push(`${name}: console ${message.type()}: ${text} ${url}`);
  });
  page.on('pageerror', (error) => problems.push(`${name}: page error: ${error.message}`));
  page.on('requestfailed', (request) => {
    if (!isApiUrl(request.url())) problems.push(`${name}: request failed: ${request.url()} ${request.failure()?.errorText}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400 && !isApiUrl(response.url())) {
      problems.push(`${name}: ${response.status()} for ${response.url()}`);
    }
  });
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  return page;
}

async function screenshot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true, animations: 'disabled' });
}

async function fillItem(page, index, { sku, quantity, unitPrice }) {
  await page.locator(`#items-${index}-sku`).fill(sku);
  await page.locator(`#items-${index}-quantity`).fill(quantity);
  await page.locator(`#items-${index}-unitPrice`).fill(unitPrice);
}

async function text(locator) {
  return (await locator.textContent())?.replace(/\s+/g, ' ').trim() ?? '';
}

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  ({ child: server, url: baseUrl } = await startServer());
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
});

after(async () => {
  await browser?.close();
  await stopServer(server);
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

// ---- the tests ----------------------------------------------------------------------------

test('every page is served with the strict Content-Security-Policy', async () => {
  for (const page of ['/', '/orders.html', '/pipeline.html', '/assets/order.js']) {
    const response = await fetch(baseUrl + page, { signal: AbortSignal.timeout(5000) });
    assert.equal(response.status, 200, page);
    const csp = response.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/, page);
    assert.match(csp, /script-src 'self';/, page);
    assert.match(csp, /style-src 'self';/, page);
    assert.match(csp, /frame-ancestors 'none'/, page);
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff', page);
  }
});

test('a customer places an order, sees its id, and sees it become STORED', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await newPage(context, 'place order');
  const posts = [];
  page.on('request', (request) => {
    if (request.method() === 'POST' && isApiUrl(request.url())) posts.push(request.postData());
  });

  await page.goto(`${baseUrl}/`);
  const orderId = await text(page.getByTestId('order-id'));
  assert.match(orderId, /^[0-9a-f-]{36}$/, 'the page chooses the orderID up front');

  await page.locator('input[name="customerId"]').fill('cust-42');
  await page.locator('input[name="customerEmail"]').fill('ada@example.com');
  await page.locator('select[name="currency"]').selectOption('EUR');
  await fillItem(page, 0, { sku: 'BOOK-1', quantity: '3', unitPrice: '19.99' });
  await page.getByRole('button', { name: 'Add item' }).click();
  await fillItem(page, 1, { sku: 'PEN-7', quantity: '7', unitPrice: '0.10' });
  // 3 × 19.99 + 7 × 0.10 = 60.67 exactly (binary floats would say 60.669999999999995).
  assert.match(await text(page.getByTestId('order-total')), /60\.67/);
  await page.locator('#ship-toggle').check();
  await page.locator('#ship-line1').fill('1 Analytical Way');
  await page.locator('#ship-city').fill('London');
  await page.locator('#ship-postal').fill('N1 7AA');
  await page.locator('#ship-country').fill('gb');
  await page.locator('#notes').fill('Leave at the door, <b>please</b>.');
  await screenshot(page, '01-order-form');

  // A double click must not create two orders.
  await page.getByRole('button', { name: 'Place order' }).dblclick();

  const success = page.getByTestId('order-success');
  await success.waitFor({ state: 'visible' });
  assert.ok((await text(success)).includes(orderId), 'the success message names the order id');
  await screenshot(page, '02-order-received');

  await page.getByTestId('order-status').filter({ hasText: /^STORED$/ }).waitFor();
  await page.locator('#stored-facts').waitFor({ state: 'visible' });
  assert.match(await text(page.locator('#stored-total')), /60\.67/);
  await screenshot(page, '03-order-stored');

  assert.equal(posts.length, 1, 'one click, one POST');
  const stored = await api(`/orders/${orderId}`);
  assert.equal(stored.status, 200);
  assert.match(stored.text, /"total":60\.67\b/, 'the exact total reached the table');
  assert.match(stored.text, /"country":"GB"/);
  assert.match(stored.text, /"notes":"Leave at the door, <b>please<\/b>\."/);
  const list = await api('/orders?limit=100');
  assert.equal(list.text.split(`"orderID":"${orderId}"`).length - 1, 1, 'exactly one order with that id');
  placedOrderId = orderId;
  await context.close();
});

test('an invalid order shows the API field errors next to the fields, and a network failure keeps the input', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await newPage(context, 'invalid order');
  await page.goto(`${baseUrl}/`);
  const orderId = await text(page.getByTestId('order-id'));

  await page.locator('input[name="customerId"]').fill('cust-43');
  await page.locator('input[name="customerEmail"]').fill('not-an-email');
  await fillItem(page, 0, { sku: 'BOOK-1', quantity: '0', unitPrice: '4.50' });
  const answer = page.waitForResponse((r) => r.request().method() === 'POST' && isApiUrl(r.url()));
  await page.getByRole('button', { name: 'Place order' }).click();
  assert.equal((await answer).status(), 400);

  const summary = page.getByTestId('order-error');
  await summary.waitFor({ state: 'visible' });
  assert.match(await text(summary), /2 fields need attention/);
  const quantityError = page.locator('[data-error-for="items[0].quantity"]');
  await quantityError.waitFor({ state: 'visible' });
  assert.match(await text(quantityError), /less than the minimum of 1/);
  assert.equal(await page.locator('#items-0-quantity').getAttribute('aria-invalid'), 'true');
  assert.match(await text(page.locator('[data-error-for="customerEmail"]')), /e-mail/);
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'order-error', 'the summary takes focus');
  await screenshot(page, '04-field-errors');

  // Correct the fields: each error clears as its field is edited.
  await page.locator('input[name="customerEmail"]').fill('grace@example.com');
  await page.locator('#items-0-quantity').fill('2');
  assert.equal(await page.locator('#items-0-quantity').getAttribute('aria-invalid'), null);

  // The network goes away: the page says so and keeps everything the user typed.
  await page.route(`${baseUrl}/orders`, (route) =>
    route.request().method() === 'POST' ? route.abort('internetdisconnected') : route.continue(),
  );
  await page.getByRole('button', { name: 'Place order' }).click();
  await summary.filter({ hasText: 'Could not reach the order service' }).waitFor();
  assert.equal(await page.locator('input[name="customerId"]').inputValue(), 'cust-43');
  assert.equal(await page.locator('input[name="customerEmail"]').inputValue(), 'grace@example.com');
  assert.equal(await page.locator('#items-0-sku').inputValue(), 'BOOK-1');
  assert.equal(await page.locator('#items-0-unitPrice').inputValue(), '4.50');
  assert.equal(await text(page.getByTestId('order-id')), orderId, 'a retry reuses the orderID');
  assert.ok(await page.getByRole('button', { name: 'Place order' }).isEnabled());
  await screenshot(page, '05-network-failure');

  // Back online: the retry goes through under the same id.
  await page.unroute(`${baseUrl}/orders`);
  await page.getByRole('button', { name: 'Place order' }).click();
  await page.getByTestId('order-success').filter({ hasText: orderId }).waitFor();
  await page.getByTestId('order-status').filter({ hasText: /^STORED$/ }).waitFor();
  await context.close();
});

/**
 * The body API Gateway sends for a gateway response of `type` in infra/template.yaml,
 * rendered as API Gateway renders it: plain `$context` substitution, no VTL
 * (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-gatewayResponse-definition.html).
 */
async function awsGatewayResponse(type, message) {
  const template = await readFile(path.join(ROOT, 'infra/template.yaml'), 'utf8');
  const block = template.split(/\n(?=  [A-Za-z0-9]+:\n)/).find((b) => b.includes(`ResponseType: ${type}\n`));
  const line = /application\/json: '(.*)'\n/.exec(block)[1].replaceAll("''", "'");
  return line.replaceAll('$context.error.messageString', JSON.stringify(message));
}

test('on AWS, a schema error that names no field is a readable message and marks what the browser can check', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await newPage(context, 'aws schema error');
  const body = await awsGatewayResponse('BAD_REQUEST_BODY', 'Invalid request body');
  await page.route(`${baseUrl}/orders`, (route) =>
    route.request().method() === 'POST'
      ? route.fulfill({ status: 400, contentType: 'application/json', body })
      : route.continue(),
  );
  await page.goto(`${baseUrl}/`);
  await page.locator('input[name="customerId"]').fill('cust-44');
  await page.locator('input[name="customerEmail"]').fill('not-an-email');
  await fillItem(page, 0, { sku: 'BOOK-1', quantity: '1', unitPrice: '4.50' });
  await page.getByRole('button', { name: 'Place order' }).click();

  const summary = page.getByTestId('order-error');
  await summary.waitFor({ state: 'visible' });
  assert.match(await text(summary), /1 field needs attention/);
  assert.match(await text(summary), /does not match the order schema/);
  const emailError = page.locator('[data-error-for="customerEmail"]');
  await emailError.waitFor({ state: 'visible' });
  assert.ok((await text(emailError)).length > 0, 'the browser says what is wrong with the e-mail');
  assert.equal(await page.locator('#customerEmail').getAttribute('aria-invalid'), 'true');
  await screenshot(page, '05b-aws-schema-error');
  await context.close();
});

test('on AWS, recent orders says it is an orderflow serve page instead of failing silently', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await newPage(context, 'aws recent orders');
  const body = await awsGatewayResponse('MISSING_AUTHENTICATION_TOKEN', 'Missing Authentication Token');
  await page.route(/\/orders\?/, (route) => route.fulfill({ status: 404, contentType: 'application/json', body }));
  await page.goto(`${baseUrl}/orders.html`);
  const box = page.locator('#orders-error');
  await box.waitFor({ state: 'visible' });
  assert.match(await text(box), /orderflow serve only/);
  await context.close();
});

test('recent orders lists the stored order with its items', async () => {
  assert.ok(placedOrderId, 'the first test placed an order');
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await newPage(context, 'recent orders');
  await page.goto(`${baseUrl}/orders.html`);
  const card = page.locator(`details[data-order-id="${placedOrderId}"]`);
  await card.waitFor({ state: 'visible' });
  await card.locator('summary').click();
  await card.locator('.line-items').waitFor({ state: 'visible' });
  assert.match(await text(card), /PEN-7/);
  assert.match(await text(card), /60\.67/);
  assert.match(await text(card), /Leave at the door, <b>please<\/b>\./, 'user text is shown as text, not markup');
  await screenshot(page, '06-recent-orders');
  await context.close();
});

test('the pipeline page shows stored orders and subscriptions, and refreshes itself', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await newPage(context, 'pipeline');
  await page.goto(`${baseUrl}/pipeline.html`);
  await page.getByTestId('orders-stored').filter({ hasText: /^2$/ }).waitFor();
  assert.equal(await text(page.getByTestId('dlq-depth')), '0');
  assert.equal(await text(page.getByTestId('queue-depth')), '0');

  // A subscription created now appears without a reload.
  const created = await fetch(`${baseUrl}/subscriptions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ protocol: 'http', endpoint: 'http://127.0.0.1:9/orders-hook' }),
    signal: AbortSignal.timeout(5000),
  });
  assert.equal(created.status, 201);
  await page.getByTestId('subscriptions').locator('td.endpoint', { hasText: 'http://127.0.0.1:9/orders-hook' }).waitFor();
  await screenshot(page, '07-pipeline');
  await context.close();
});

test('the form works from the keyboard and fits a phone screen', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const page = await newPage(context, 'phone');
  await page.goto(`${baseUrl}/`);
  await page.locator('#customerId').focus();
  await page.keyboard.type('cust-phone');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'customerEmail');
  await fillItem(page, 0, { sku: 'MUG-2', quantity: '2', unitPrice: '7,25' });
  await page.locator('#add-item').focus();
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'items-1-sku', 'a new row takes focus');
  await page.keyboard.type('TEA-1');
  await page.locator('#items-1-unitPrice').fill('3.3');
  assert.match(await text(page.getByTestId('order-total')), /17\.80/);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
  await screenshot(page, '08-phone-form');

  await page.locator('#items-1-sku').focus();
  await page.keyboard.press('Enter');
  await page.getByTestId('order-status').filter({ hasText: /^STORED$/ }).waitFor();
  await screenshot(page, '09-phone-stored');
  await context.close();
});

test('with an API key, recent orders and the pipeline ask for it and then load with it', async () => {
  const key = 'portal-e2e-key-0123456789';
  const { child, url } = await startServer({ ORDERFLOW_API_KEY: key });
  try {
    const posted = await fetch(`${url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': key },
      body: JSON.stringify({ orderID: 'keyed-1', customerId: 'cust-key', items: [{ sku: 'KEY-1', quantity: 1, unitPrice: 2.5 }], currency: 'EUR' }),
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(posted.status, 202);
    for (let i = 0; i < 100; i += 1) {
      const stored = await fetch(`${url}/orders/keyed-1`, { headers: { 'x-api-key': key }, signal: AbortSignal.timeout(5000) });
      if (stored.status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    // The API's 401s before the key is entered are the page working, not a problem to report.
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    await page.goto(`${url}/orders.html`);
    await page.locator('#orders-error').waitFor({ state: 'visible' });
    await page.locator('#api-key').fill(key);
    await page.locator('#api-key').dispatchEvent('change');
    await page.locator('details[data-order-id="keyed-1"]').waitFor({ state: 'visible' });
    await screenshot(page, '10-recent-orders-with-key');
    // The key is kept for the tab: the pipeline page reads with it at once.
    await page.goto(`${url}/pipeline.html`);
    assert.equal(await page.locator('#api-key').inputValue(), key);
    await page.getByTestId('orders-stored').filter({ hasText: /^1$/ }).waitFor();
    await screenshot(page, '11-pipeline-with-key');
    await context.close();
  } finally {
    await stopServer(child);
  }
});

test('no page logged a CSP violation, a script error or a failed asset', () => {
  assert.deepEqual(problems, []);
});
