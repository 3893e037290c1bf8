// Opens the test page in headless Debian Chromium (fake microphone playing a WAV file) and
// runs one call. Prints the page's report as one JSON line on stdout.
//   node call.mjs URL WAV TOKEN TALK_MS
import { chromium } from 'playwright-core';

const [url, wav, token, talkMs] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--headless',
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${wav}`,
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    // Let the page play the gateway's audio without a click.
    '--autoplay-policy=no-user-gesture-required',
    // Real host addresses in candidates instead of mDNS names (there is no mDNS here).
    '--disable-features=WebRtcHideLocalIpsWithMdns',
  ],
});
try {
  const page = await browser.newPage();
  page.on('console', (m) => process.stderr.write(`[page] ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`[page error] ${e}\n`));
  await page.goto(url);
  const report = await page.evaluate(
    (args) => window.runCall(args),
    { token, talkMs: Number(talkMs) },
  );
  process.stdout.write(`${JSON.stringify(report)}\n`);
} finally {
  await browser.close();
}
