// A buyer on a payment form, in headless Chromium: choose a plan, enter name and email, pay on
// the (test) checkout page, and wait on the done page until the key shows. Prints the key.
import { chromium } from 'playwright-core';

const { FORM_URL, SCREENSHOT, CHROMIUM } = process.env;
const browser = await chromium.launch({
  executablePath: CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 412, height: 915 } });
  await page.goto(FORM_URL);
  await page.getByRole('radio', { name: /one year/ }).check();
  await page.getByLabel('Quantity').fill('1');
  await page.getByLabel('Your name').fill('Ann Lee');
  await page.getByLabel(/Email/).fill('ann@example.com');
  await page.getByRole('button', { name: 'Continue to payment' }).click();
  await page.waitForURL(/\/pay\//);
  await page.getByRole('button', { name: /Pay/ }).click();
  await page.waitForURL(/\/done\?session=/);
  const key = page.locator('code').first();
  await key.waitFor({ timeout: 20000 });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log((await key.textContent()).trim());
} finally {
  await browser.close();
}
