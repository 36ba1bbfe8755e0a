// The owner's journey in the admin console, in headless Chromium: sign in, read the dashboard,
// switch it to 90 days, set up two-step sign-in (the code computed here, as an authenticator
// app would), sign out and in again with a code, add a support user, look at the sessions.
// Every page is checked with axe-core and photographed at phone and desktop widths.
// Prints one JSON line: {"pages": [{name, size, serious, violations}], "signedInWithCode", "supportCreated"}.
import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const { BASE, EMAIL, PASSWORD, SHOTS, CHROMIUM, SUPPORT_EMAIL } = process.env;
const SIZES = { phone: { width: 390, height: 844 }, desktop: { width: 1280, height: 900 } };

// RFC 6238 with SHA-1, six digits, 30-second steps: what an authenticator app computes.
function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const out = [];
  let bits = 0;
  let value = 0;
  for (const c of text.replace(/[\s=]/g, '').toUpperCase()) {
    value = ((value << 5) | alphabet.indexOf(c)) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const at = mac[mac.length - 1] & 0x0f;
  const n = (((mac[at] & 0x7f) << 24) | (mac[at + 1] << 16) | (mac[at + 2] << 8) | mac[at + 3]) % 1000000;
  return String(n).padStart(6, '0');
}

const stepNow = () => Math.floor(Date.now() / 30000);

const browser = await chromium.launch({
  executablePath: CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const pages = [];

// axe-core is injected as a script, which the console's policy forbids: the check alone
// bypasses it (the console itself uses no JavaScript).
async function check(page, name) {
  for (const size of ['phone', 'desktop']) {
    await page.setViewportSize(SIZES[size]);
    await page.addScriptTag({ path: AXE });
    const result = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ['violations'] });
      return r.violations.map(v => ({ id: v.id, impact: v.impact, nodes: v.nodes.length,
                                      help: v.help, target: v.nodes[0]?.target }));
    });
    const serious = result.filter(v => v.impact === 'serious' || v.impact === 'critical');
    await page.screenshot({ path: `${SHOTS}/owner-${name}-${size}.png`, fullPage: true });
    pages.push({ name, size, serious: serious.length, violations: result });
  }
}

let signedInWithCode = false;
let supportCreated = false;
try {
  const context = await browser.newContext({ viewport: SIZES.desktop, bypassCSP: true });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(`${BASE}/admin/login`);
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/\/admin$/);
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  await check(page, 'dashboard');
  await page.getByRole('link', { name: 'Last 90 days' }).click();
  await page.waitForURL(/\/admin\?days=90$/);
  await page.locator('a[aria-current="page"]', { hasText: 'Last 90 days' }).waitFor();
  await check(page, 'dashboard-90');

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Account' }).click();
  await page.waitForURL(/\/admin\/account$/);
  await check(page, 'account');
  await page.getByRole('button', { name: 'Set up two-step sign-in' }).click();
  await page.waitForURL(/done=enrolling/);
  const secret = (await page.locator('code.secret').innerText()).replace(/\s/g, '');
  await check(page, 'enrol');
  const enrolStep = stepNow();
  await page.getByLabel('Six-digit code from your authenticator app').fill(totp(secret, enrolStep));
  await page.getByRole('button', { name: 'Turn on two-step sign-in' }).click();
  await page.waitForURL(/done=totp-on/);
  await page.getByText('Two-step sign-in is on.').waitFor();

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/admin\/login$/);
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/\/admin\/login\/code$/);
  await check(page, 'code');
  // The enrolment spent its step's code: the next step's, which the server also accepts.
  await page.getByLabel('Six-digit code from your authenticator app').fill(totp(secret, Math.max(stepNow(), enrolStep + 1)));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForURL(/\/admin$/);
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  signedInWithCode = true;

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).click();
  await page.waitForURL(/\/admin\/users$/);
  await check(page, 'users');
  await page.getByLabel('Email').fill(SUPPORT_EMAIL);
  await page.getByLabel('Role').selectOption('support');
  await page.getByLabel(/Initial password/).fill('a support initial password');
  await page.getByRole('button', { name: 'Add user' }).click();
  await page.waitForURL(/done=created/);
  await page.getByRole('link', { name: SUPPORT_EMAIL }).waitFor();
  supportCreated = true;
  await check(page, 'user-created');
  await page.getByRole('link', { name: SUPPORT_EMAIL }).click();
  await page.waitForURL(/\/admin\/users\/\d+$/);
  await check(page, 'user');

  await page.goto(`${BASE}/admin/account/sessions`);
  await check(page, 'sessions');
  await context.close();
} finally {
  await browser.close();
}
console.log(JSON.stringify({ pages, signedInWithCode, supportCreated }));
