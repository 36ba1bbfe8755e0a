// The sales and money journeys in the admin console, in headless Chromium. Sales issues three
// licenses for a new customer and downloads their CSV; a money user filters the provider
// events, opens the failed one, retries it, and finds the failed key mail in the outbox.
// Changes are made once, at desktop size; the phone runs walk the same pages. Every page is
// checked with axe-core and photographed. Prints one JSON line:
// {"pages": [{name, size, serious, overflow}], "keys": [...], "csv": "...", "retried": bool, "outboxFailed": bool}
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const { BASE, SALES, MONEY, PASSWORD, SHOTS, CHROMIUM } = process.env;
const SIZES = { desktop: { width: 1280, height: 900 }, phone: { width: 390, height: 844 } };

const browser = await chromium.launch({
  executablePath: CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const pages = [];

// axe-core is injected as a script, which the console's policy forbids: the check alone
// bypasses it. The console itself uses no JavaScript.
async function check(page, name, size) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map(v => ({ id: v.id, impact: v.impact, nodes: v.nodes.length,
                                    help: v.help, target: v.nodes[0]?.target }));
  });
  const serious = result.filter(v => v.impact === 'serious' || v.impact === 'critical');
  // Wider than the window: a phone would have to scroll sideways.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.screenshot({ path: `${SHOTS}/${name}-${size}.png`, fullPage: true });
  pages.push({ name, size, serious: serious.length, overflow, violations: result });
}

async function signIn(page, email) {
  await page.goto(`${BASE}/admin/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/\/admin(\/search)?$/);
}

async function signOut(page) {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/admin\/login$/);
}

async function nav(page, name, url) {
  await page.getByRole('link', { name, exact: true }).first().click();
  await page.waitForURL(url);
}

let keys = [];
let csv = '';
let retried = false;
let outboxFailed = false;
try {
  // Sales first at desktop size, where the licenses are issued, so that the phone run and the
  // money pages show them (and their key mail) too.
  for (const size of ['desktop', 'phone']) {
    const context = await browser.newContext({ viewport: SIZES[size], bypassCSP: true, acceptDownloads: true });
    const page = await context.newPage();
    page.setDefaultTimeout(20000);
    await page.goto(`${BASE}/admin/login`);
    await check(page, 'sales-login', size);
    await signIn(page, SALES);
    await nav(page, 'Issue licenses', /\/admin\/issue$/);
    await check(page, 'sales-issue', size);
    if (size === 'desktop') {
      const plan = await page.locator('#plan option', { hasText: 'Pro (one year)' }).getAttribute('value');
      await page.locator('#plan').selectOption(plan);
      await page.getByLabel('How many licenses').fill('3');
      await page.getByLabel('A new customer:').check();
      await page.getByLabel('Name', { exact: true }).fill('Grace Hopper');
      await page.getByLabel('Email', { exact: true }).fill('grace@example.com');
      await page.getByRole('button', { name: 'Issue licenses' }).click();
      await page.waitForURL(/\/admin\/issued\?/);
      await page.getByText('3 licenses were issued for Grace Hopper').waitFor();
      await check(page, 'sales-issued', size);
      keys = await page.locator('a.key').allTextContents();
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('link', { name: "Download the customer's licenses as CSV" }).click(),
      ]);
      csv = await readFile(await download.path(), 'utf8');
    }
    await nav(page, 'Customers', /\/admin\/customers$/);
    await check(page, 'sales-customers', size);
    await page.getByRole('link', { name: 'Grace Hopper' }).click();
    await page.waitForURL(/\/admin\/customers\/\d+$/);
    await check(page, 'sales-customer', size);
    await nav(page, 'Licenses', /\/admin\/licenses$/);
    await check(page, 'sales-licenses', size);
    await signOut(page);
    await context.close();
  }

  // Money at phone size first, which leaves the failed event for the desktop run to retry.
  for (const size of ['phone', 'desktop']) {
    const context = await browser.newContext({ viewport: SIZES[size], bypassCSP: true });
    const page = await context.newPage();
    page.setDefaultTimeout(20000);
    await signIn(page, MONEY);
    await nav(page, 'Money', /\/admin\/payments$/);
    await check(page, 'money-payments', size);
    await nav(page, 'Provider events', /\/admin\/events$/);
    await page.getByLabel('Status').selectOption('failed');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/status=failed/);
    await check(page, 'money-events', size);
    await page.getByRole('link', { name: 'evt_invoice_paid_cy' }).click();
    await page.waitForURL(/\/admin\/events\/stripe\/evt_invoice_paid_cy$/);
    await check(page, 'money-event', size);
    if (size === 'desktop') {
      await page.getByRole('button', { name: 'Retry this event' }).click();
      await page.waitForURL(/done=applied/);
      await page.getByText('Retried: the event was applied.').waitFor();
      retried = true;
      await check(page, 'money-retried', size);
    }
    await nav(page, 'Mail outbox', /\/admin\/outbox$/);
    // The key mail of the issue above: no SMTP server takes it, so its attempt fails.
    let failed = false;
    for (let i = 0; i < 50 && !failed; i++) {
      await page.goto(`${BASE}/admin/outbox?state=failed`);
      failed = await page.getByText('grace@example.com').count() > 0;
      if (!failed) await page.waitForTimeout(200);
    }
    outboxFailed = outboxFailed || failed;
    await check(page, 'money-outbox', size);
    await nav(page, 'Subscriptions', /\/admin\/subscriptions$/);
    await check(page, 'money-subscriptions', size);
    await nav(page, 'Sync from Stripe', /\/admin\/sync$/);
    await check(page, 'money-sync', size);
    await signOut(page);
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({ pages, keys, csv, retried, outboxFailed }));
