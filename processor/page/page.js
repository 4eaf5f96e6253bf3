/*
 * page.js - trustctl serve's page: reads the JSON API (serve.c) and draws
 * one merchant (/merchants/{id}) or the overview (/). Signal meanings come
 * from the API (the catalog, signals.def and signals_zh.def); only the
 * page's own words are in the dictionary below. No libraries, no network
 * beyond this server.
 */
'use strict';

const WORDS = {
  en: {
    title: 'Trust Index', search: 'Search', search_ph: 'Merchant id',
    best: 'Best merchants', worst: 'Worst merchants',
    tiers: 'Merchants per tier', tier: 'Tier', confidence: 'Confidence',
    subs: 'Sub-scores by dimension', reasons: 'Why this score',
    history: 'Score history', signals: 'Signals',
    updated: 'Score version {v}, updated {t}',
    baseline: 'A merchant without any events scores {p} on this model',
    no_reasons: 'Nothing costs this merchant points against the platform.',
    no_history: 'No history yet.',
    points: '{n} points over {d} days',
    unknown: 'No merchant with id "{id}".',
    malformed: 'That is not a merchant id (1 to 64 bytes).',
    unavailable: 'The trust data is unavailable right now: {why}',
    token_ask: 'This server needs an access token.', token_use: 'Use token',
    token_bad: 'The access token was refused.',
    reason: '{m}: {v} (from {n}), platform typical {p}: {pts} points',
    reason_nodata: '{m}: no data yet, platform typical {p}: {pts} points',
    rule: 'Cap applied: {t}',
    total: '{n} merchants', none: '—',
    value: 'Value', unit: 'Unit', window: 'Window', meaning: 'Meaning',
    platform: 'Platform', better: 'higher is better', lower: 'lower is better',
    tier_names: ['', 'Excellent', 'Good', 'Fair', 'Watch', 'At risk'],
    dims: {quality: 'Quality', fulfillment: 'Fulfillment', service: 'Service',
      disputes: 'Disputes', loyalty: 'Loyalty', logistics: 'Logistics'},
    windows: {'1d': '1 day', '7d': '7 days', '30d': '30 days',
      '90d': '90 days', lifetime: 'all time'},
  },
  zh: {
    title: '商家信任指数', search: '搜索', search_ph: '商家 ID',
    best: '评分最高的商家', worst: '评分最低的商家',
    tiers: '各等级商家数', tier: '等级', confidence: '置信度',
    subs: '各维度分项得分', reasons: '得分原因',
    history: '评分历史', signals: '指标',
    updated: '评分版本 {v}，更新于 {t}',
    baseline: '按当前模型，没有任何记录的商家得 {p} 分',
    no_reasons: '与平台相比，该商家没有被扣分的项目。',
    no_history: '暂无历史记录。',
    points: '{d} 天内 {n} 个点',
    unknown: '没有找到商家“{id}”。',
    malformed: '这不是有效的商家 ID（1 到 64 字节）。',
    unavailable: '信任数据暂时不可用：{why}',
    token_ask: '此服务器需要访问令牌。', token_use: '使用令牌',
    token_bad: '访问令牌被拒绝。',
    reason: '{m}：{v}（样本 {n}），平台一般水平 {p}：{pts} 分',
    reason_nodata: '{m}：暂无数据，平台一般水平 {p}：{pts} 分',
    rule: '触发上限规则：{t}',
    total: '共 {n} 个商家', none: '—',
    value: '数值', unit: '单位', window: '统计窗口', meaning: '含义',
    platform: '平台', better: '越高越好', lower: '越低越好',
    tier_names: ['', '优秀', '良好', '一般', '关注', '风险'],
    dims: {quality: '商品质量', fulfillment: '发货履约', service: '售后服务',
      disputes: '纠纷', loyalty: '复购', logistics: '物流'},
    windows: {'1d': '1 天', '7d': '7 天', '30d': '30 天', '90d': '90 天',
      lifetime: '全部时间'},
    units: {orders: '单', cents: '分', ms: '时间', hours: '小时', ratio: '比例',
      stars: '星', reviews: '条评价', refunds: '笔退款', buyers: '位买家',
      disputes: '起纠纷', cases: '起', days: '天'},
  },
};

let lang = localStorage.getItem('td-lang') === 'zh' ? 'zh' : 'en';
let current = null; /* the last merchant document, redrawn on a switch */

const $ = (id) => document.getElementById(id);

function t(key, args) {
  let s = WORDS[lang][key];
  for (const k in args || {}) s = s.split('{' + k + '}').join(String(args[k]));
  return s;
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) {
    if (k === 'class') e.className = attrs[k];
    /* Through the CSSOM: the CSP (serve.c) refuses style attributes. */
    else if (k === 'style') e.style.cssText = attrs[k];
    else e.setAttribute(k, attrs[k]);
  }
  for (const c of kids) e.append(c);
  return e;
}

function fmt(v, unit) {
  if (v === null || v === undefined) return t('none');
  if (unit === 'ratio') return (v * 100).toFixed(1) + '%';
  if (unit === 'cents') return (v / 100).toFixed(2);
  if (unit === 'ms') return new Date(v).toISOString().slice(0, 10);
  if (Math.abs(v) >= 100) return v.toFixed(0);
  return Number(v.toPrecision(3)).toString();
}

/* ---- the API ---- */

async function api(path) {
  const headers = {};
  const tok = sessionStorage.getItem('td-token');
  if (tok) headers.Authorization = 'Bearer ' + tok;
  const r = await fetch(path, {headers});
  let body = null;
  try { body = await r.json(); } catch (e) { body = {error: r.statusText}; }
  return {status: r.status, body};
}

function message(text) {
  $('message').textContent = text;
  $('message').hidden = !text;
}

/* Shows the answer of a failed call; true if it was one. */
function failed(res, id) {
  if (res.status === 200) return false;
  $('overview').hidden = true;
  $('merchant').hidden = true;
  if (res.status === 401) {
    $('token').hidden = false;
    message(sessionStorage.getItem('td-token') ? t('token_bad') : '');
  } else if (res.status === 404) {
    message(t('unknown', {id}));
  } else if (res.status === 400) {
    message(t('malformed'));
  } else {
    message(t('unavailable', {why: res.body.error || res.status}));
  }
  return true;
}

/* ---- the overview ---- */

function rankList(ol, rows) {
  ol.replaceChildren();
  for (const m of rows) {
    const a = el('a', {href: '/merchants/' + encodeURIComponent(m.merchant_id)},
      m.merchant_id);
    ol.append(el('li', {}, a, ' ', fmt(m.score),
      ' ', el('span', {class: 'tier t' + (m.tier || 0)}, String(m.tier || '?'))));
  }
}

async function showOverview() {
  const [top, bottom, tiers] = await Promise.all(
    [api('/api/top?n=10'), api('/api/bottom?n=10'), api('/api/tiers')]);
  if (failed(top, '') || failed(bottom, '') || failed(tiers, '')) return;
  message('');
  $('merchant').hidden = true;
  $('overview').hidden = false;
  rankList($('top'), top.body.merchants);
  rankList($('bottom'), bottom.body.merchants);
  const box = $('tiers');
  box.replaceChildren();
  const total = tiers.body.total || 1;
  for (let k = 1; k <= 5; k++) {
    const n = tiers.body.tiers[String(k)];
    box.append(el('div', {class: 'bar', 'data-tier': String(k)},
      el('span', {}, el('span', {class: 'tier t' + k}, String(k)), ' ',
        WORDS[lang].tier_names[k]),
      el('div', {class: 'track'}, el('div', {class: 'fill',
        style: 'width:' + (100 * n / total).toFixed(1) + '%'})),
      el('span', {class: 'num'}, String(n))));
  }
  box.append(el('div', {class: 'muted'}, t('total', {n: tiers.body.total})));
}

/* ---- one merchant ---- */

/* "refund_rate_30d 0.18 n=120 (prior 0.06) -7.2 pts" (model.c) in plain
 * words with the catalog's meaning; rule reasons are shown as written. */
const REASON = /^(\w+) (\S+) n=(\S+) \(prior (\S+)\) (-?[\d.]+) pts$/;

function reasonText(raw, zh, sigs) {
  const m = REASON.exec(raw);
  if (!m || !sigs[m[1]]) {
    if (lang === 'zh' && zh) return zh;
    return t('rule', {t: raw.replace(/^cap: /, '')});
  }
  const s = sigs[m[1]];
  const meaning = lang === 'zh' ? s.meaning_zh : s.meaning;
  const args = {m: meaning, v: fmt(Number(m[2]), s.unit), n: m[3],
    p: fmt(Number(m[4]), s.unit), pts: m[5]};
  return m[2] === '-' ? t('reason_nodata', args) : t('reason', args);
}

function drawHistory(points) {
  const box = $('history');
  box.replaceChildren();
  if (!points.length) {
    box.append(el('div', {class: 'muted', id: 'history-empty'}, t('no_history')));
    return;
  }
  const W = 760, H = 200, L = 36, R = 10, T = 10, B = 24;
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('width', '100%');
  svg.setAttribute('role', 'img');
  const t0 = points[0].ms, t1 = points[points.length - 1].ms;
  const x = (ms) => L + (t1 > t0 ? (ms - t0) / (t1 - t0) : 0.5) * (W - L - R);
  const y = (s) => T + (1 - s / 100) * (H - T - B);
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  for (const g of [0, 50, 70, 80, 90, 100]) {
    add('line', {x1: L, x2: W - R, y1: y(g), y2: y(g), stroke: '#e4e8f0'});
    add('text', {x: 4, y: y(g) + 4}, String(g));
  }
  add('polyline', {fill: 'none', stroke: '#3d6fd8', 'stroke-width': 2,
    points: points.map((p) => x(p.ms) + ',' + y(p.score)).join(' ')});
  for (const p of points) {
    const c = add('circle', {class: 'point', cx: x(p.ms), cy: y(p.score), r: 3.5,
      fill: '#1d2b4f', 'data-score': p.score, 'data-tier': p.tier});
    const tip = document.createElementNS(ns, 'title');
    tip.textContent = new Date(p.ms).toISOString().slice(0, 16).replace('T', ' ') +
      '  ' + p.score.toFixed(2) + '  ' + t('tier') + ' ' + p.tier;
    c.append(tip);
  }
  add('text', {x: L, y: H - 6}, new Date(t0).toISOString().slice(0, 10));
  add('text', {x: W - R - 70, y: H - 6}, new Date(t1).toISOString().slice(0, 10));
  box.append(svg);
  const days = Math.max(0, Math.round((t1 - t0) / 86400000));
  box.append(el('div', {class: 'muted', id: 'history-count'},
    t('points', {n: points.length, d: days})));
}

function drawMerchant() {
  const {doc, hist} = current;
  const w = WORDS[lang];
  const sigs = {};
  for (const s of doc.signals) sigs[s.name] = s;
  $('mid').textContent = doc.merchant_id;
  $('score').textContent = doc.score === null ? t('none') : doc.score.toFixed(2);
  $('tier').textContent = doc.tier === null ? '?' : String(doc.tier);
  $('tier').className = 'tier t' + (doc.tier || 0);
  $('tier-name').textContent = w.tier_names[doc.tier] || '';
  $('confidence').textContent =
    doc.confidence === null ? t('none') : (doc.confidence * 100).toFixed(0) + '%';
  $('updated').textContent = doc.updated_ms === null ? '' : t('updated',
    {v: doc.version, t: new Date(doc.updated_ms).toISOString().slice(0, 16).replace('T', ' ')});
  $('baseline').textContent = t('baseline', {p: doc.prior_score.toFixed(1)});

  const subs = $('subs');
  subs.replaceChildren();
  for (const [dim, v] of Object.entries(doc.sub_scores)) {
    subs.append(el('div', {class: 'bar', 'data-dim': dim},
      el('span', {}, w.dims[dim] || dim),
      el('div', {class: 'track'}, el('div', {class: 'fill',
        style: 'width:' + Math.max(0, Math.min(100, v)).toFixed(1) + '%'})),
      el('span', {class: 'num'}, v.toFixed(1))));
  }

  const ul = $('reasons');
  ul.replaceChildren();
  doc.reasons.forEach((raw, i) => ul.append(el('li',
    {class: 'worse', 'data-raw': raw}, reasonText(raw, (doc.reasons_zh || [])[i], sigs))));
  if (!doc.reasons.length)
    ul.append(el('li', {class: 'better'}, t('no_reasons')));

  drawHistory(hist.points);

  const box = $('signals');
  box.replaceChildren();
  const cats = {};
  for (const s of doc.signals) (cats[s.category] = cats[s.category] || []).push(s);
  for (const [cat, list] of Object.entries(cats)) {
    const rows = list.map((s) => el('tr', {'data-signal': s.name},
      el('td', {}, lang === 'zh' ? s.meaning_zh : s.meaning,
        el('div', {class: 'muted'}, s.name + ' · ' +
          (s.higher_is_better ? w.better : w.lower))),
      el('td', {class: 'num'}, fmt(s.value, s.unit)),
      el('td', {class: 'num'}, 'prior' in s ? fmt(s.prior, s.unit) : ''),
      el('td', {}, (w.units || {})[s.unit] || s.unit),
      el('td', {}, w.windows[s.window] || s.window)));
    const head = el('tr', {}, el('th', {}, t('meaning')),
      el('th', {class: 'num'}, t('value')), el('th', {class: 'num'}, t('platform')), el('th', {}, t('unit')), el('th', {}, t('window')));
    box.append(el('details', {open: '', 'data-category': cat},
      el('summary', {}, lang === 'zh' ? list[0].category_zh : cat), el('table', {}, head, ...rows)));
  }
}

async function showMerchant(id) {
  const enc = encodeURIComponent(id);
  const [doc, hist] = await Promise.all(
    [api('/api/merchants/' + enc), api('/api/merchants/' + enc + '/history')]);
  if (failed(doc, id) || failed(hist, id)) return;
  message('');
  $('overview').hidden = true;
  $('merchant').hidden = false;
  current = {doc: doc.body, hist: hist.body};
  drawMerchant();
}

/* ---- chrome ---- */

function applyLang() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  document.title = t('title');
  for (const e of document.querySelectorAll('[data-i18n]'))
    e.textContent = t(e.dataset.i18n);
  for (const e of document.querySelectorAll('[data-i18n-ph]'))
    e.placeholder = t(e.dataset.i18nPh);
  $('lang').textContent = lang === 'zh' ? 'English' : '中文';
}

function route() {
  const m = /^\/merchants\/(.+)$/.exec(location.pathname);
  $('token').hidden = true;
  if (m) {
    let id;
    try { id = decodeURIComponent(m[1]); } catch (e) { id = m[1]; }
    $('q').value = id;
    document.title = id + ' · ' + t('title');
    return showMerchant(id);
  }
  current = null;
  return showOverview();
}

function go(path) {
  history.pushState(null, '', path);
  route();
}

document.addEventListener('DOMContentLoaded', () => {
  applyLang();
  $('search').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = $('q').value.trim();
    if (id) go('/merchants/' + encodeURIComponent(id));
  });
  $('home').addEventListener('click', (ev) => { ev.preventDefault(); go('/'); });
  $('lang').addEventListener('click', () => {
    lang = lang === 'zh' ? 'en' : 'zh';
    localStorage.setItem('td-lang', lang);
    applyLang();
    if (current) drawMerchant(); else if (!$('overview').hidden) showOverview();
    if (!$('message').hidden) route();
  });
  $('token').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem('td-token', $('token-input').value);
    route();
  });
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest('a[href^="/merchants/"]');
    if (!a) return;
    ev.preventDefault();
    go(a.getAttribute('href'));
  });
  window.addEventListener('popstate', route);
  route();
});
