// The seller's branding in headless Chromium: the buy page, the done page with the key, and the
// portal's sign-in page, at desktop and phone size. A buyer pays on the (test) checkout page
// to reach the done page. Each page is checked with axe-core and photographed; on the done
// page every group of the key must sit on one line (a group broken across lines has two
// boxes). Prints one JSON line: {"pages": [{name, size, serious, overflow}], "keys": [...]}
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const { BASE, FORM_URL, SHOTS, CHROMIUM } = process.env;
const SIZES = { desktop: { width: 1280, height: 900 }, phone: { width: 360, height: 780 } };
const LOGO = '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="40" viewBox="0 0 160 40">'
  + '<rect width="160" height="40" rx="6" fill="#1b1f24"/><text x="14" y="27" font-family="sans-serif" '
  + 'font-size="20" fill="#ffcc00">ACME</text></svg>';

const browser = await chromium.launch({
  executablePath: CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const pages = [];
const keys = [];

// axe-core is injected as a script, which the pages' policies forbid: the check alone
// bypasses them.
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

try {
  for (const size of ['desktop', 'phone']) {
    const context = await browser.newContext({ viewport: SIZES[size], bypassCSP: true });
    // The logo's host does not exist in the test: the browser gets a stand-in image.
    await context.route('https://cdn.acme.example/**', route => route.fulfill({
      contentType: 'image/svg+xml', body: LOGO }));
    const page = await context.newPage();
    page.setDefaultTimeout(20000);
    await page.goto(FORM_URL);
    await page.getByRole('img', { name: 'Acme <Tools>' }).waitFor();
    await check(page, 'buy', size);

    await page.getByRole('radio', { name: /one year/ }).check();
    await page.getByLabel('Your name').fill('Ann Lee');
    await page.getByLabel(/Email/).fill(`ann-${size}@example.com`);
    await page.getByRole('button', { name: 'Continue to payment' }).click();
    await page.waitForURL(/\/pay\//);
    await page.getByRole('button', { name: /Pay/ }).click();
    await page.waitForURL(/\/done\?session=/);
    const code = page.locator('.key code').first();
    await code.waitFor();
    const groups = await page.evaluate(() =>
      [...document.querySelectorAll('.key code .g')].map(g => ({
        text: g.textContent, boxes: g.getClientRects().length, top: g.getBoundingClientRect().top })));
    const lines = new Set(groups.map(g => Math.round(g.top))).size;
    keys.push({ size, key: (await code.textContent()).trim(), groups, lines });
    await check(page, 'done', size);

    await page.goto(`${BASE}/portal/sign-in`);
    await check(page, 'portal-sign-in', size);
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({ pages, keys }));
