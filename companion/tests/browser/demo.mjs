// Opens the demo page in headless Debian Chromium (fake microphone playing a WAV file), uses
// it the way a person would (create an account, sign out, sign in, Call, talk, Hang up) and
// prints one JSON line on stdout: what the page showed. Run by companion/tests/browser_demo.rs.
//   node demo.mjs URL WAV SCENARIO SCREENSHOT
// SCENARIO: `two-turns` (desktop width) or `barge-in` (phone width).
import { chromium } from 'playwright-core';

const [url, wav, scenario, screenshot] = process.argv.slice(2);
const started = Date.now();
const since = () => Date.now() - started;
const report = { scenario, timings: {} };

// What each scenario waits for before it hangs up, judged on the page's DOM alone.
const DONE = {
  'two-turns': () => {
    const finals = document.querySelectorAll('.line.user[data-final="true"]').length;
    const call = document.getElementById('call').dataset;
    const face = document.getElementById('avatar').dataset;
    const latency = document.getElementById('latency').dataset;
    return finals >= 2 && Number(call.rtpBytes) > 0 && Number(face.visemesApplied) > 0
      && Number(face.mouthShapes) > 1 && latency.latencyMs !== '';
  },
  'barge-in': () => {
    const cut = document.querySelector('.line.companion[data-interrupted="true"]');
    const finals = document.querySelectorAll('.line.user[data-final="true"]').length;
    return cut !== null && finals >= 2;
  },
};
// The moment for the mid-call screenshot: the companion is talking with its mouth moving.
const TALKING = () => {
  const face = document.getElementById('avatar').dataset;
  return Number(face.visemesApplied) > 5 && document.querySelector('.line.companion .text')?.textContent;
};

function snapshot() {
  const lines = (sel) => [...document.querySelectorAll(sel)].map((li) => ({
    turn: Number(li.dataset.turn),
    text: li.querySelector('.text').textContent,
    final: li.dataset.final === 'true',
    interrupted: li.dataset.interrupted === 'true',
    heard: li.dataset.heard ?? null,
    note: li.querySelector('.note')?.textContent ?? null,
  }));
  const call = document.getElementById('call').dataset;
  const face = document.getElementById('avatar').dataset;
  const latency = document.getElementById('latency');
  const notice = document.getElementById('notice');
  return {
    state: document.body.dataset.state,
    notice: notice.hidden ? null : notice.textContent,
    status: document.getElementById('call-status').textContent,
    user: lines('.line.user'),
    companion: lines('.line.companion'),
    rtpBytes: Number(call.rtpBytes),
    rtpPackets: Number(call.rtpPackets || 0),
    events: Number(call.events),
    visemesApplied: Number(face.visemesApplied),
    mouthShapes: Number(face.mouthShapes),
    sync: face.sync,
    mouth: document.getElementById('mouth').getAttribute('d'),
    latencyMs: latency.dataset.latencyMs === '' ? null : Number(latency.dataset.latencyMs),
    latencyTurns: Number(latency.dataset.turns),
    latencyText: latency.textContent,
    interruptions: Number(document.getElementById('transcript').dataset.interruptions || 0),
    horizontalOverflow: document.documentElement.scrollWidth > window.innerWidth,
  };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${wav}`,
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--autoplay-policy=no-user-gesture-required',
    // Real host addresses in candidates instead of mDNS names (there is no mDNS here).
    '--disable-features=WebRtcHideLocalIpsWithMdns',
  ],
});
let page;
try {
  const phone = scenario === 'barge-in';
  page = await browser.newPage({
    viewport: phone ? { width: 390, height: 844 } : { width: 1100, height: 800 },
  });
  const csp = [];
  page.on('console', (m) => {
    if (m.text().includes('Content Security Policy')) csp.push(m.text());
    process.stderr.write(`[page] ${m.text()}\n`);
  });
  page.on('pageerror', (e) => {
    report.pageErrors = [...(report.pageErrors || []), String(e)];
    process.stderr.write(`[page error] ${e}\n`);
  });
  const response = await page.goto(url);
  report.pageStatus = response.status();
  report.csp = response.headers()['content-security-policy'] || null;

  // Create an account through the form, after a refused sign-in (no such account yet)
  // shows the control plane's error.
  const email = `demo-${scenario}-${Date.now()}@example.com`;
  const password = 'correct horse battery';
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.click('#sign-in');
  await page.waitForSelector('#notice:not([hidden])', { timeout: 15000 });
  report.refusedSignIn = await page.textContent('#notice');
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.click('#create-account'); // reveals the sign-up fields
  await page.fill('#birth-year', '1990');
  await page.check('#terms');
  await page.click('#create-account');
  await page.waitForSelector('body[data-state="ready"]', { timeout: 15000 });
  report.timings.signedUpMs = since();
  report.signedInAs = await page.textContent('#who-name');
  // Out and back in with the password.
  await page.click('#sign-out');
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.click('#sign-in');
  await page.waitForSelector('body[data-state="ready"]', { timeout: 15000 });
  report.timings.signedInMs = since();

  await page.click('#call-button');
  const called = Date.now();
  await page.waitForSelector('body[data-state="in-call"]', { timeout: 20000 });
  report.timings.connectedMs = Date.now() - called;
  const shoot = async () => {
    await page.screenshot({ path: screenshot, fullPage: true });
    report.screenshot = screenshot;
  };
  if (scenario === 'two-turns') {
    // While the first answer plays.
    await page.waitForFunction(TALKING, null, { timeout: 25000, polling: 50 });
    report.timings.talkingMs = Date.now() - called;
    await shoot();
  }
  await page.waitForFunction(DONE[scenario], null, { timeout: 30000, polling: 100 });
  report.timings.doneMs = Date.now() - called;
  report.page = await page.evaluate(snapshot);
  // The barge-in run shows the cut answer, still in the call.
  if (!report.screenshot) await shoot();

  await page.click('#hang-up');
  await page.waitForSelector('body[data-state="ready"]', { timeout: 5000 });
  report.afterHangUp = await page.evaluate(snapshot);
  report.cspViolations = csp;
} catch (e) {
  report.error = String(e);
  if (page) report.page = await page.evaluate(snapshot).catch((err) => String(err));
} finally {
  await browser.close();
}
process.stdout.write(`${JSON.stringify(report)}\n`);
