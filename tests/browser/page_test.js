/*
 * page_test.js - trustctl serve's page in headless Chromium (Debian's
 * /usr/bin/chromium driven by playwright-core; no browser download).
 *
 *   node tests/browser/page_test.js BASE_URL EXPECT_JSON SHOT_DIR
 *        [TOKEN_URL TOKEN]
 *
 * EXPECT_JSON (written by tests/it_serve.c from Redis) names a merchant and
 * what the page must show for it: score, tier, reasons, history points.
 * Checks those, switches to Chinese and checks a label, opens an unknown
 * merchant and checks the message, and saves a screenshot of each step in
 * SHOT_DIR. With TOKEN_URL (a server that needs TOKEN), the page must ask
 * for the token, refuse a wrong one and show the merchant with the right one. Requests to anything but BASE_URL are aborted and fail the
 * test: the page must need no network. Exit status 0 when all hold.
 */
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const {chromium} = require('playwright-core');

const [base, expectFile, shots, tokenBase, token] = process.argv.slice(2);
const want = JSON.parse(fs.readFileSync(expectFile, 'utf8'));
const failures = [];

function check(what, got, expected) {
  const ok = JSON.stringify(got) === JSON.stringify(expected);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}: ${JSON.stringify(got)}` +
    (ok ? '' : ` (expected ${JSON.stringify(expected)})`));
  if (!ok) failures.push(what);
}

async function main() {
  fs.mkdirSync(shots, {recursive: true});
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'td-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
      '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: {width: 1200, height: 1600},
  });
  const outside = [];
  await ctx.route('**/*', (route) => {
    const u = route.request().url();
    if (u.startsWith(base + '/') || (tokenBase && u.startsWith(tokenBase + '/')))
      return route.continue();
    outside.push(u);
    return route.abort();
  });
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    /* Console errors too: a Content-Security-Policy refusal shows there. */
    page.on('console', (m) => {
      /* The unknown merchant's 404 is expected; the page shows it. */
      if (m.type() === 'error' && !/status of 404/.test(m.text()))
        errors.push(m.text());
    });
    page.setDefaultTimeout(15000);

    /* One merchant, in English. */
    await page.goto(`${base}/merchants/${encodeURIComponent(want.merchant)}`);
    await page.waitForSelector('#merchant:not([hidden]) #score:not(:empty)');
    check('merchant id', await page.textContent('#mid'), want.merchant);
    check('score', await page.textContent('#score'), want.score.toFixed(2));
    check('tier', await page.textContent('#tier'), String(want.tier));
    const raws = await page.$$eval('#reasons li[data-raw]',
      (els) => els.map((e) => e.dataset.raw));
    check('reasons (as in Redis)', raws, want.reasons);
    const texts = await page.$$eval('#reasons li', (els) => els.map((e) => e.textContent));
    check('reasons are in words, not raw', texts.some((t, i) =>
      raws[i] !== undefined && t === raws[i]), false);
    check('history points', await page.locator('#history circle.point').count(),
      want.history_points);
    check('sub-scores shown', await page.locator('#subs .bar').count() > 0, true);
    check('signal categories shown',
      await page.locator('#signals details').count() > 0, true);
    check('history label', await page.textContent('h2[data-i18n="history"]'),
      'Score history');
    await page.screenshot({path: path.join(shots, 'merchant-en.png'), fullPage: true});

    /* Switch to Simplified Chinese. */
    await page.click('#lang');
    await page.waitForFunction(() => document.documentElement.lang === 'zh-CN');
    check('history label (zh)', await page.textContent('h2[data-i18n="history"]'),
      '评分历史');
    check('a signal meaning (zh)', await page.textContent(
      'tr[data-signal="refund_rate_30d"] td'), '每笔已支付订单的退款申请数' +
      'refund_rate_30d · 越低越好');
    /* Rules in the model's Chinese words (reason_zh), the rest worded from
     * the catalog's Chinese meanings. */
    const zhTexts = await page.$$eval('#reasons li[data-raw]',
      (els) => els.map((e) => e.textContent));
    want.reasons_zh.forEach((z, i) => {
      if (z) check(`reason ${i} (zh)`, zhTexts[i], z);
      else check(`reason ${i} (zh) has Chinese words`, /[\u4e00-\u9fff]/.test(zhTexts[i]), true);
    });
    check('history points (zh)',
      await page.locator('#history circle.point').count(), want.history_points);
    await page.screenshot({path: path.join(shots, 'merchant-zh.png'), fullPage: true});

    /* An unknown merchant: a clear message, in Chinese, then English. */
    await page.fill('#q', 'no-such-merchant-42');
    await page.press('#q', 'Enter');
    await page.waitForSelector('#message:not([hidden])');
    check('unknown merchant (zh)', await page.textContent('#message'),
      '没有找到商家“no-such-merchant-42”。');
    check('address of the merchant', new URL(page.url()).pathname,
      '/merchants/no-such-merchant-42');
    await page.screenshot({path: path.join(shots, 'unknown-zh.png')});
    await page.click('#lang');
    await page.waitForFunction(() =>
      document.getElementById('message').textContent.startsWith('No merchant'));
    check('unknown merchant (en)', await page.textContent('#message'),
      'No merchant with id "no-such-merchant-42".');
    await page.screenshot({path: path.join(shots, 'unknown-en.png')});

    /* The overview: best, worst, tiers. */
    await page.goto(base + '/');
    await page.waitForSelector('#overview:not([hidden]) #top li');
    check('best merchants listed', await page.locator('#top li').count() > 0, true);
    check('tier bars', await page.locator('#tiers .bar').count(), 5);
    await page.screenshot({path: path.join(shots, 'overview.png'), fullPage: true});

    check('no script or console errors', errors, []);

    /* A server with a token: the page asks for it. */
    if (tokenBase) {
      await page.goto(`${tokenBase}/merchants/${encodeURIComponent(want.merchant)}`);
      await page.waitForSelector('#token:not([hidden])');
      await page.fill('#token-input', 'wrong-' + token);
      await page.click('#token button');
      await page.waitForFunction(() =>
        document.getElementById('message').textContent.includes('refused'));
      check('wrong token refused', await page.textContent('#message'),
        'The access token was refused.');
      await page.fill('#token-input', token);
      await page.click('#token button');
      await page.waitForSelector('#merchant:not([hidden]) #score:not(:empty)');
      check('score with the token', await page.textContent('#score'),
        want.score.toFixed(2));
      check('token form gone', await page.isHidden('#token'), true);
      await page.screenshot({path: path.join(shots, 'token.png')});
    }
  } finally {
    await ctx.close();
    fs.rmSync(profile, {recursive: true, force: true});
  }
  check('no request left the server', outside, []);
}

main().then(() => {
  if (failures.length) {
    console.log(`page_test: ${failures.length} check(s) failed`);
    process.exit(1);
  }
  console.log(`page_test: all checks passed; screenshots in ${shots}`);
}, (e) => {
  console.log('page_test: ' + (e && e.stack || e));
  process.exit(1);
});
