// The developer's set-up journey in the admin console, in headless Chromium: sign in, create a
// product, copy a code snippet, create a plan, an access token and a payment form, open the
// buy page. Every page is checked with axe-core and photographed at desktop size along the
// way, then again at phone size. Prints one JSON line:
// {"pages": [{name, size, serious, violations}], "product", "copied", "token", "buy_page"}.
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const { BASE, EMAIL, PASSWORD, SHOTS, CHROMIUM } = process.env;
const SIZES = { desktop: { width: 1280, height: 900 }, phone: { width: 390, height: 844 } };

const browser = await chromium.launch({
  executablePath: CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const pages = [];
const visited = [];

// axe-core is injected as a script, which the console's policy forbids: the check alone
// bypasses it (bypassCSP); the console's own script is first-party and allowed anyway.
async function check(page, name, size) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map(v => ({ id: v.id, impact: v.impact, nodes: v.nodes.length,
                                    help: v.help, target: v.nodes[0]?.target }));
  });
  const serious = result.filter(v => v.impact === 'serious' || v.impact === 'critical');
  await page.screenshot({ path: `${SHOTS}/${name}-${size}.png`, fullPage: true });
  pages.push({ name, size, serious: serious.length, violations: result });
  if (size === 'desktop') {
    visited.push({ name, path: new URL(page.url()).pathname + new URL(page.url()).search });
  }
}

async function signIn(page) {
  await page.goto(`${BASE}/admin/login`);
  await page.locator('#email').fill(EMAIL);
  await page.locator('#password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/\/admin(\/search)?$/);
}

const report = { pages };
try {
  const context = await browser.newContext({
    viewport: SIZES.desktop,
    bypassCSP: true,
    permissions: ['clipboard-read', 'clipboard-write'],
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(`${BASE}/admin/login`);
  await check(page, 'login', 'desktop');
  await signIn(page);

  // A product.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Products' }).click();
  await page.waitForURL(/\/admin\/products$/);
  await check(page, 'products', 'desktop');
  await page.getByRole('link', { name: 'New product' }).click();
  await page.waitForURL(/\/admin\/products\/new$/);
  await check(page, 'product-new', 'desktop');
  await page.locator('#name').fill('Journey Editor');
  await page.locator('#description').fill('The editor, sold <b>yearly</b>.');
  await page.locator('#features').fill('pro\nexport');
  await page.getByRole('button', { name: 'Create product' }).click();
  await page.waitForURL(/\/admin\/products\/\d+\?done=created$/);
  report.product = Number(page.url().match(/products\/(\d+)/)[1]);
  await check(page, 'product', 'desktop');

  // Copy the Python snippet: the button the script showed puts the text on the clipboard.
  const copy = page.locator('button[data-copy="snippet-python"]');
  await copy.waitFor({ state: 'visible' });
  await copy.click();
  await page.locator('#snippet-python-status').getByText('Copied.').waitFor();
  report.copied = await page.evaluate(() => navigator.clipboard.readText());

  // A plan of it.
  await page.getByRole('link', { name: 'New plan' }).click();
  await page.waitForURL(/\/admin\/plans\/new\?product=\d+$/);
  await check(page, 'plan-new', 'desktop');
  await page.locator('#name').fill('Journey Pro');
  await page.locator('#period_days').fill('365');
  await page.getByLabel('pro', { exact: true }).check();
  await page.locator('#max_machines').fill('2');
  await page.locator('#stripe_price_ids').fill('price_journey');
  await page.getByRole('button', { name: 'Create plan' }).click();
  await page.waitForURL(/\/admin\/plans\/\d+\?done=created$/);
  await check(page, 'plan', 'desktop');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Plans' }).click();
  await page.waitForURL(/\/admin\/plans$/);
  await check(page, 'plans', 'desktop');

  // An access token for the program, shown once.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tokens' }).click();
  await page.waitForURL(/\/admin\/tokens$/);
  await check(page, 'tokens', 'desktop');
  await page.getByRole('link', { name: 'New access token' }).click();
  await page.waitForURL(/\/admin\/tokens\/new$/);
  await check(page, 'token-new', 'desktop');
  await page.locator('#name').fill('Journey app');
  await page.locator('[id="perm-products:read"]').check();
  await page.locator('[id="perm-cryptolens:activate"]').check();
  await page.locator('#product_id').selectOption(String(report.product));
  await page.getByRole('button', { name: 'Create token' }).click();
  await page.waitForURL(/\/admin\/tokens\/\d+\/created$/);
  report.token = (await page.locator('#token-secret').innerText()).trim();
  await check(page, 'token-created', 'desktop');

  // A payment form offering the plan, and its buy page.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Payment forms' }).click();
  await page.waitForURL(/\/admin\/forms$/);
  await check(page, 'forms', 'desktop');
  await page.getByRole('link', { name: 'New payment form' }).click();
  await page.waitForURL(/\/admin\/forms\/new$/);
  await check(page, 'form-product', 'desktop');
  await page.locator('#product').selectOption(String(report.product));
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.waitForURL(/\/admin\/forms\/new\?product=\d+$/);
  await check(page, 'form-new', 'desktop');
  await page.locator('#name').fill('Journey form');
  await page.locator('#offer0_plan').selectOption({ index: 1 });
  await page.locator('#offer0_label').fill('Journey Pro yearly');
  await page.locator('#offer0_price').fill('€49 / year');
  await page.locator('#offer0_stripe_price_id').fill('price_journey');
  await page.getByRole('button', { name: 'Create payment form' }).click();
  await page.waitForURL(/\/admin\/forms\/\d+\?done=created$/);
  await check(page, 'form', 'desktop');
  await page.getByRole('link', { name: 'Preview the buy page' }).click();
  await page.waitForURL(/\/buy\/[a-z0-9]+$/);
  report.buy_page = await page.locator('body').innerText();
  await check(page, 'buy', 'desktop');
  await page.goBack();

  // License URLs and the providers' status.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'License URLs' }).click();
  await page.waitForURL(/\/admin\/license-urls$/);
  await check(page, 'license-urls', 'desktop');
  await page.getByRole('link', { name: 'New license URL' }).click();
  await page.waitForURL(/\/admin\/license-urls\/new$/);
  await check(page, 'license-url-new', 'desktop');
  await page.locator('#name').fill('Journey SendOwl');
  await page.getByRole('button', { name: 'Create license URL' }).click();
  await page.waitForURL(/\/admin\/license-urls\/\d+\?done=created$/);
  await check(page, 'license-url', 'desktop');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Providers' }).click();
  await page.waitForURL(/\/admin\/providers$/);
  await check(page, 'providers', 'desktop');
  await context.close();

  // The same pages on a phone.
  const phone = await browser.newContext({ viewport: SIZES.phone, bypassCSP: true });
  const small = await phone.newPage();
  small.setDefaultTimeout(15000);
  await small.goto(`${BASE}/admin/login`);
  await check(small, 'login', 'phone');
  await signIn(small);
  for (const { name, path } of visited) {
    if (name === 'login') {
      continue;
    }
    await small.goto(`${BASE}${path}`);
    await check(small, name, 'phone');
  }
  await phone.close();
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
