// The customer portal's billing page in headless Chromium: a subscription buyer signs in with
// their key and email, opens "Billing" from the navigation, and presses "Manage billing", which
// must land on the billing portal session's URL (answered here, since the test's Stripe
// stand-in names a host that does not exist). Each size is checked with axe-core and
// photographed. Prints one JSON line: {"pages": [{name, size, serious, overflow}], "portal": url}
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const { BASE, KEY, EMAIL, SHOTS, CHROMIUM } = process.env;
const SIZES = { desktop: { width: 1280, height: 900 }, phone: { width: 390, height: 844 } };

const browser = await chromium.launch({
  executablePath: CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const pages = [];

// axe-core is injected as a script, which the portal's policy forbids: the check alone
// bypasses it. The portal itself needs no JavaScript.
async function check(page, name, size) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map(v => ({ id: v.id, impact: v.impact, nodes: v.nodes.length,
                                    help: v.help, target: v.nodes[0]?.target }));
  });
  const serious = result.filter(v => v.impact === 'serious' || v.impact === 'critical');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await page.screenshot({ path: `${SHOTS}/${name}-${size}.png`, fullPage: true });
  pages.push({ name, size, serious: serious.length, overflow, violations: result });
}

let portal = null;
try {
  for (const size of ['desktop', 'phone']) {
    const context = await browser.newContext({ viewport: SIZES[size], bypassCSP: true });
    const page = await context.newPage();
    page.setDefaultTimeout(20000);
    await page.goto(`${BASE}/portal/sign-in`);
    await page.getByLabel('License key').fill(KEY);
    await page.getByLabel('Email it was sold to').fill(EMAIL);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/portal\/licenses$/);
    await page.getByRole('link', { name: 'Billing', exact: true }).click();
    await page.waitForURL(/\/portal\/billing$/);
    await page.getByRole('heading', { name: 'Payment history' }).waitFor();
    await check(page, 'billing', size);
    if (size === 'desktop') {
      // Stripe's page is not reachable from the test; the browser arriving there is the point.
      await page.route('https://billing.stripe.test/**', route => route.fulfill({
        contentType: 'text/html', body: '<!doctype html><title>Billing</title><h1>Stripe billing</h1>' }));
      await page.getByRole('button', { name: 'Manage billing' }).click();
      await page.waitForURL(/^https:\/\/billing\.stripe\.test\//);
      portal = page.url();
    }
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({ pages, portal }));
