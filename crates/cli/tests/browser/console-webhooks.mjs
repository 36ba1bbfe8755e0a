// The webhook pages of the admin console, in headless Chromium. At desktop size an admin
// creates an endpoint for the test's local receiver (its secret shown once), sends a test
// event, waits for it in the delivery log, and opens the delivery's attempts; the phone run
// walks the same pages. Every page is checked with axe-core and photographed. Prints one JSON
// line: {"pages": [...], "secret": "whsec_…", "violations": [serious or critical ones]}
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const { BASE, USER_EMAIL, PASSWORD, RECEIVER, SHOTS, CHROMIUM } = process.env;
const SIZES = { desktop: { width: 1280, height: 900 }, phone: { width: 390, height: 844 } };

const browser = await chromium.launch({
  executablePath: CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const pages = [];
const violations = [];

// axe-core is injected as a script, which the console's policy forbids: the check alone
// bypasses it.
async function check(page, name, size) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map(v => ({ id: v.id, impact: v.impact, nodes: v.nodes.length,
                                    help: v.help, target: v.nodes[0]?.target }));
  });
  const serious = result.filter(v => v.impact === 'serious' || v.impact === 'critical');
  for (const v of serious) violations.push({ page: name, size, ...v });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.screenshot({ path: `${SHOTS}/webhooks-${name}-${size}.png`, fullPage: true });
  pages.push({ name, size, serious: serious.length, overflow });
}

async function signIn(page) {
  await page.goto(`${BASE}/admin/login`);
  await page.getByLabel('Email').fill(USER_EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/\/admin(\/search)?$/);
}

let secret = '';
let endpoint = '';
try {
  for (const size of ['desktop', 'phone']) {
    const context = await browser.newContext({ viewport: SIZES[size], bypassCSP: true });
    const page = await context.newPage();
    page.setDefaultTimeout(20000);
    await signIn(page);
    await page.getByRole('link', { name: 'Webhooks', exact: true }).first().click();
    await page.waitForURL(/\/admin\/webhooks$/);
    await check(page, 'list', size);
    if (size === 'desktop') {
      await page.getByRole('link', { name: 'New endpoint' }).click();
      await page.waitForURL(/\/admin\/webhooks\/new$/);
      await check(page, 'new', size);
      await page.getByLabel('URL', { exact: true }).fill(RECEIVER);
      await page.getByLabel('Description').fill('Order system');
      await page.getByLabel('Events', { exact: true }).fill('license.*, customer.created');
      await page.getByRole('button', { name: 'Create endpoint' }).click();
      await page.waitForURL(/\/admin\/webhooks\/\d+\?done=created$/);
      secret = (await page.locator('#webhook-secret').textContent()).trim();
      endpoint = page.url().replace(/\?.*$/, '');
      await check(page, 'created', size);
      await page.getByRole('button', { name: 'Send test event' }).click();
      await page.waitForURL(/\/admin\/webhooks\/deliveries\/\d+\?done=test$/);
      // The receiver fails the first attempt and takes the retry.
      for (let i = 0; i < 100; i++) {
        await page.reload();
        if (await page.locator('.badge.hook-delivered').count() > 0) break;
        await page.waitForTimeout(200);
      }
      await page.locator('.badge.hook-delivered').first().waitFor();
      await check(page, 'delivery', size);
    }
    await page.goto(endpoint);
    await check(page, 'endpoint', size);
    await page.getByLabel('State', { exact: true }).selectOption('delivered');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/state=delivered/);
    await page.locator('td a', { hasText: '#' }).first().click();
    await page.waitForURL(/\/admin\/webhooks\/deliveries\/\d+$/);
    if (size === 'phone') await check(page, 'delivery', size);
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({ pages, secret, violations }));
