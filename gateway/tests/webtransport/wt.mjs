// Opens the test page in headless Debian Chromium and runs one WebTransport chat session
// against the gateway. Prints the page's report as one JSON line on stdout.
//   node wt.mjs URL TOKEN CONVERSATION
import { chromium } from 'playwright-core';

const [url, token, conversation] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--headless',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
});
try {
  const page = await browser.newPage();
  page.on('console', (m) => process.stderr.write(`[page] ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`[page error] ${e}\n`));
  await page.goto(url);
  const report = await page.evaluate((args) => window.runChat(args), { token, conversation });
  process.stdout.write(`${JSON.stringify(report)}\n`);
} finally {
  await browser.close();
}
