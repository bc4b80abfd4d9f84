// Drives HemoStat's dashboard in Debian's headless Chromium through
// playwright-core; run by tests/tests/dashboard_browser.rs, which starts the
// real stack and says what to expect.
//
//   node tests/browser/dashboard.mjs '<json options>'
//
// Options: scenario ("heal" | "hostile" | "cross-origin" | "approve" |
// "forged-answer"), url, screenshot
// (PNG path), timeoutMs; password (the dashboard's token: the browser gives
// it as HTTP Basic credentials, as a user types it into the browser's
// prompt); hostResolverRules (Chromium's, e.g. "MAP evil.example
// 127.0.0.1"); for "heal" and "hostile": container (host/name key), and
// for "hostile": name, reason, issue. "cross-origin" opens a page of
// another site (the test's) that tries to invoke a function through the
// emulator, and reports what its fetches came to. "approve" clicks Approve
// on the pending approval `approval` and reports what the page says.
// "forged-answer" opens a page of another site that tries to answer an
// approval (`target`: the dashboard's approve URL) with a fetch that sends
// the page's header (a CORS preflight) and then a form it submits, and
// reports what came back.
//
// Protocol with the caller, one line each on stdout:
//   READY <ms>      the page shows the container (heal: now crash it)
//   RESULT <json>   what was seen, on success (exit 0)
//   FAIL <reason>   on failure (exit 1), after a screenshot and a page dump
import { chromium } from 'playwright-core';

const opts = JSON.parse(process.argv[2] || '{}');
const executablePath = process.env.HEMOSTAT_CHROMIUM || '/usr/bin/chromium';
const timeout = opts.timeoutMs || 60000;
const started = Date.now();
const since = () => Date.now() - started;

const consoleErrors = [];
const consoleLines = [];
const responses = [];
const pageErrors = [];
const dialogs = [];
let browser;
let page;

function fail(reason) {
  const err = new Error(reason);
  err.expected = true;
  throw err;
}

async function dump() {
  try {
    return await page.evaluate(() => ({
      status: document.getElementById('status').textContent,
      grid: [...document.querySelectorAll('#grid .card')].map((c) => c.dataset.container + ' ' + c.dataset.status),
      issues: [...document.querySelectorAll('#issues tr')].map((r) => r.innerText),
      events: [...document.querySelectorAll('#events tr')].map((r) => r.innerText),
    }));
  } catch (e) {
    return { error: String(e) };
  }
}

async function heal() {
  const key = opts.container;
  const card = `#grid .card[data-container=${JSON.stringify(key)}]`;
  await page.waitForSelector(card, { timeout });
  // A reload would lose this: the update must come without one.
  await page.evaluate(() => { window.__hemostatLoaded = true; });
  const readyMs = since();
  console.log(`READY ${readyMs}`);

  const row = `#events tr[data-container=${JSON.stringify(key)}][data-action="restart"][data-status="success"]`;
  await page.waitForSelector(row, { timeout }).catch(() => fail(`no history row "restart / success" for ${key} within ${timeout} ms`));
  const historyMs = since();
  if (!(await page.evaluate(() => window.__hemostatLoaded === true))) fail('the page was reloaded');
  // The issues come from the durable streams, which hold the success before
  // the history list does: the container's issue must be gone by now.
  const issueRows = await page.locator(`#issues tr[data-container=${JSON.stringify(key)}]`).count();
  if (issueRows !== 0) fail(`${key} still listed under active issues after its successful restart`);
  await page.waitForSelector(`${card}[data-status="running"]`, { timeout: 15000 })
    .catch(() => fail(`${key} not shown running after the restart`));

  // Its charts, from the collector's series.
  await page.click(card);
  await page.waitForFunction(() => Number(document.getElementById('chart-cpu').dataset.points) >= 2, null, { timeout: 15000 })
    .catch(() => fail('the CPU chart has fewer than 2 samples'));
  const points = await page.evaluate(() => Number(document.getElementById('chart-cpu').dataset.points));

  // Details on click.
  await page.click(row);
  const details = await page.textContent('#details-body');
  if (!details.includes('"restart"') || !details.includes('"success"')) fail(`details do not show the remediation: ${details}`);
  return { ready_ms: readyMs, history_ms: historyMs, chart_points: points };
}

async function hostile() {
  const key = opts.container;
  await page.waitForFunction((k) => [...document.querySelectorAll('#grid .card')].some((c) => c.dataset.container === k), key, { timeout });
  await page.waitForFunction(() => document.querySelectorAll('#events tr').length > 0 && document.querySelectorAll('#issues tr').length > 0, null, { timeout });
  const readyMs = since();
  console.log(`READY ${readyMs}`);
  const seen = await page.evaluate((k) => {
    const card = [...document.querySelectorAll('#grid .card')].find((c) => c.dataset.container === k);
    return {
      name: card.querySelector('.name').textContent,
      summaries: [...document.querySelectorAll('#events tr td:last-child')].map((td) => td.textContent),
      issues: [...document.querySelectorAll('#issues tr td:nth-child(2)')].map((td) => td.textContent),
      injected: document.querySelectorAll('main img, main script, main iframe, [onerror], [onload]').length,
      pwned: window.__pwned === true,
    };
  }, key);
  if (seen.name !== opts.name) fail(`card name ${JSON.stringify(seen.name)} is not the literal ${JSON.stringify(opts.name)}`);
  if (!seen.summaries.includes(opts.reason)) fail(`no history row shows the literal reason: ${JSON.stringify(seen.summaries)}`);
  if (!seen.issues.includes(opts.issue)) fail(`no issue row shows the literal issue: ${JSON.stringify(seen.issues)}`);
  if (seen.injected !== 0) fail(`${seen.injected} injected element(s) in the page`);
  // Give any injected handler time to fire before judging.
  await page.waitForTimeout(1000);
  if (seen.pwned || (await page.evaluate(() => window.__pwned === true))) fail('injected script ran');
  if (dialogs.length) fail(`injected script opened dialogs: ${JSON.stringify(dialogs)}`);
  return { ready_ms: readyMs, name: seen.name };
}

// The page of another site does the requests itself (as any web page
// could); this waits for them to settle and reports each outcome.
async function crossOrigin() {
  await page.waitForFunction(() => window.__attack && window.__attack.done, null, { timeout })
    .catch(() => fail('the page never finished its requests'));
  const attack = await page.evaluate(() => window.__attack);
  console.log(`READY ${since()}`);
  return attack;
}

// The page's own Approve button, on the approval the caller parked.
async function approve() {
  const row = `#approvals tr[data-approval=${JSON.stringify(opts.approval)}]`;
  await page.waitForSelector(`${row} button.approve`, { timeout }).catch(() => fail(`no pending approval ${opts.approval} on the page`));
  console.log(`READY ${since()}`);
  await page.click(`${row} button.approve`);
  await page.waitForFunction(() => /sent by|failed/.test(document.getElementById('approval-status').textContent), null, { timeout })
    .catch(() => fail('the page never said what became of the answer'));
  const said = await page.textContent('#approval-status');
  if (!said.includes('sent by')) fail(`the answer was not sent: ${said}`);
  return { said };
}

// A page of another site answers an approval by itself: its fetch (with
// the header, so preflighted) and, once that settled, a form it submits
// (no header possible). The dashboard's answer to the form is the page
// the browser ends on.
async function forgedAnswer() {
  await page.waitForURL(opts.target, { timeout }).catch(() => fail('the form was never submitted'));
  await page.waitForLoadState('load');
  const fetched = consoleLines.find((l) => l.startsWith('FETCH ')) || 'FETCH never settled';
  const body = await page.textContent('body');
  console.log(`READY ${since()}`);
  return { fetch: fetched.slice(6), statuses: responses.filter((r) => r.url === opts.target), body };
}

async function main() {
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];
  if (opts.hostResolverRules) args.push(`--host-resolver-rules=${opts.hostResolverRules}`);
  browser = await chromium.launch({
    executablePath,
    headless: true,
    // What works on a machine whose only network is loopback: no sandbox as
    // root, and none of Chromium's background connections.
    args,
  });
  const credentials = opts.password ? { httpCredentials: { username: 'hemostat', password: opts.password } } : {};
  page = await browser.newPage({ viewport: { width: 1280, height: 900 }, ...credentials });
  page.on('console', (m) => { consoleLines.push(m.text()); if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('response', (r) => responses.push({ url: r.url(), method: r.request().method(), status: r.status() }));
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  await page.goto(opts.url, { waitUntil: 'load', timeout });
  const scenarios = { hostile, heal, 'cross-origin': crossOrigin, approve, 'forged-answer': forgedAnswer };
  const result = await (scenarios[opts.scenario] || heal)();
  // Every inlined script and style must pass the page's CSP.
  const csp = consoleErrors.filter((e) => /Content Security Policy/i.test(e));
  if (csp.length) fail(`CSP violations: ${JSON.stringify(csp)}`);
  if (pageErrors.length) fail(`script errors: ${JSON.stringify(pageErrors)}`);
  await page.screenshot({ path: opts.screenshot, fullPage: true });
  console.log('RESULT ' + JSON.stringify({ ...result, total_ms: since(), console_errors: consoleErrors }));
}

try {
  await main();
  await browser.close();
  process.exit(0);
} catch (e) {
  console.log(`FAIL ${e.expected ? e.message : e.stack || e}`);
  if (page) {
    console.log('PAGE ' + JSON.stringify(await dump()));
    await page.screenshot({ path: opts.screenshot, fullPage: true }).catch(() => {});
  }
  if (consoleErrors.length) console.log('CONSOLE ' + JSON.stringify(consoleErrors));
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
