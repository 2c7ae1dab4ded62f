// The orders card: totals, the open and closed tables, the location filter and the Cancel
// buttons. Rows are reconciled by order id and rebuilt only when what they show changes, so
// keyboard focus survives updates.

import { api } from './api.js';
import { orderHref } from './detail.js';
import { $, badge, el, setText, showMsg } from './dom.js';
import {
  capitalise, fmtCount, fmtDuration, fmtNum, fmtUtc, intFmt, parseTime, pnlFmt, priceFmt, qtyFmt,
} from './format.js';
import { scheduleRefresh } from './live.js';

/**
 * `positions`: the last answer of `/api/v1/positions`; `seq` drops stale answers; `filter`:
 * the location asked for; `seenStatus` and `flash`: which rows to highlight as changed;
 * `dueTimers`: refetches armed at pending due times.
 */
const tables = {
  positions: null,
  seq: 0,
  filter: '',
  seenStatus: new Map(),
  flash: new Set(),
  dueTimers: new Map(),
  onRendered: () => {},
};

/** Calls `listener` after every redraw of the tables (the activity list reads their orders). */
export function setRenderListener(listener) {
  tables.onRendered = listener;
}

/** Highlights this order's row when it next appears (the order the form just placed). */
export function flashOrder(id) {
  tables.flash.add(id);
}

/** The order with this id in the last positions fetched, or null. */
export function findOrder(id) {
  const p = tables.positions;
  if (!p) return null;
  return (p.open || []).find((o) => o.id === id) || (p.closed || []).find((o) => o.id === id) || null;
}

export async function refreshPositions() {
  const seq = ++tables.seq;
  const q = new URLSearchParams({ limit: '200' });
  if (tables.filter) q.set('location', tables.filter);
  try {
    const data = await api('GET', `/api/v1/positions?${q}`);
    if (seq !== tables.seq) return;
    tables.positions = data;
    $('e-filter').textContent = '';
    $('f-filter').removeAttribute('aria-invalid');
    showMsg('orders-error', '');
    render();
  } catch (e) {
    if (seq !== tables.seq) return;
    if (e.status === 400 && /location/.test(e.detail)) {
      $('e-filter').textContent = capitalise(e.detail.replace(/^location: /, ''));
      $('f-filter').setAttribute('aria-invalid', 'true');
    } else {
      showMsg('orders-error', `Orders unavailable: ${e.detail}`);
    }
  }
}

function sideTag(side) {
  return el('span', { class: 'side-tag', dataset: { side } }, side);
}

function locationCell(o) {
  return el('td', { class: 'loc' }, o.location, el('span', { class: 'loc-type' }, o.location_type));
}

/** The due time, as the link to the order's detail (`/#/orders/ID`). */
function dueCell(o, now) {
  const t = parseTime(o.hour_start_utc);
  return el('td', { class: 'due-at' },
    el('a', { href: orderHref(o.id), class: 'order-link', 'aria-label': `Order ${o.id}, due ${fmtUtc(t, now)} UTC` },
      el('time', { datetime: o.hour_start_utc, title: o.hour_start_utc }, fmtUtc(t, now))));
}

function openRow(o, now) {
  const due = parseTime(o.hour_start_utc);
  const cancel = el('button', {
    type: 'button',
    class: 'btn btn-small btn-danger',
    'aria-label': `Cancel ${o.side} ${qtyFmt.format(o.qty_mwh)} MWh due ${fmtUtc(due, now)}`,
    onclick: () => cancelOrder(o, cancel),
  }, 'Cancel');
  return el('tr', { dataset: { orderId: o.id, status: o.status } },
    dueCell(o, now),
    el('td', { class: 'due-in', dataset: { due: String(due) } }, ''),
    el('td', {}, sideTag(o.side)),
    el('td', { class: 'num' }, fmtNum(qtyFmt, o.qty_mwh)),
    el('td', { class: 'num' }, fmtNum(priceFmt, o.limit_price)),
    locationCell(o),
    el('td', { class: 'status' }, badge(o.status)),
    el('td', { class: 'act' }, o.status === 'PENDING' ? cancel : ''));
}

function closedRow(o, now) {
  const approved = typeof o.approval_rt_lmp === 'number';
  const pnlCell = approved
    ? el('td', { class: `num pnl ${o.pnl >= 0 ? 'pnl-pos' : 'pnl-neg'}` }, fmtNum(pnlFmt, o.pnl))
    : el('td', { class: 'num pnl muted' }, '—');
  return el('tr', { dataset: { orderId: o.id, status: o.status } },
    dueCell(o, now),
    el('td', {}, sideTag(o.side)),
    el('td', { class: 'num' }, fmtNum(qtyFmt, o.qty_mwh)),
    el('td', { class: 'num' }, fmtNum(priceFmt, o.limit_price)),
    locationCell(o),
    // The price source under the status, like the location type under the location.
    el('td', { class: 'status' }, badge(o.status),
      o.approval_rt_source ? el('span', { class: 'source', title: 'Price source' }, o.approval_rt_source) : ''),
    el('td', { class: 'num lmp' }, approved ? priceFmt.format(o.approval_rt_lmp) : '—'),
    el('td', { class: 'reason' }, o.reject_reason || ''),
    pnlCell);
}

/** What a row shows; a row is rebuilt only when this changes. */
const signature = (o) => JSON.stringify([o.status, o.hour_start_utc, o.approval_rt_lmp, o.approval_rt_source,
  o.reject_reason, o.pnl,
  o.qty_mwh, o.limit_price, o.location, o.location_type]);

function reconcile(tbody, orders, build, now) {
  const existing = new Map();
  for (const tr of tbody.children) existing.set(tr.dataset.orderId, tr);
  const wanted = new Set();
  orders.forEach((o, i) => {
    wanted.add(o.id);
    let tr = existing.get(o.id);
    const sig = signature(o);
    if (!tr || tr.dataset.sig !== sig) {
      const fresh = build(o, now);
      fresh.dataset.sig = sig;
      const seen = tables.seenStatus.get(o.id);
      if (tables.flash.has(o.id) || (seen !== undefined && seen !== o.status)) {
        fresh.classList.add('flash');
        tables.flash.delete(o.id);
      }
      if (tr) tr.replaceWith(fresh);
      tr = fresh;
    }
    if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
  });
  for (const [id, tr] of existing) if (!wanted.has(id)) tr.remove();
}

function render() {
  const p = tables.positions;
  if (!p) return;
  const now = Date.now();
  const open = p.open || [];
  const closed = p.closed || [];
  reconcile($('open-body'), open, openRow, now);
  reconcile($('closed-body'), closed, closedRow, now);
  for (const o of open.concat(closed)) tables.seenStatus.set(o.id, o.status);
  $('open-empty').hidden = open.length > 0;
  $('closed-empty').hidden = closed.length > 0;

  const t = p.totals || {};
  setText('t-open', fmtNum(intFmt, t.open_count));
  setText('t-closed', fmtNum(intFmt, t.closed_count));
  setText('t-approved', fmtNum(intFmt, t.approved_count));
  setText('t-rejected', fmtNum(intFmt, t.rejected_count));
  setText('t-cancelled', fmtNum(intFmt, t.cancelled_count));
  setText('t-pnl', fmtNum(pnlFmt, t.total_pnl));
  $('t-pnl').className = typeof t.total_pnl === 'number' ? (t.total_pnl >= 0 ? 'pnl-pos' : 'pnl-neg') : '';
  setText('open-count', fmtCount(open.length, t.open_count));
  setText('closed-count', fmtCount(closed.length, t.closed_count));

  showUnreadable(p.unreadable || []);

  if (!tables.filter) updateLocations(open.concat(closed));
  armDueTimers(open, now);
  tables.onRendered();
  tickRows(now);
}

/** Most ids the unreadable-orders notice names; the rest are counted. */
const UNREADABLE_IDS = 5;

/**
 * One line under the totals naming the stored orders the server could not read (a side or
 * status another tool wrote): they are in neither table, so say so. The reasons are its title.
 * The paragraph is made here, beside `orders-error`, the first time it is needed.
 */
function showUnreadable(rows) {
  let node = $('orders-unreadable');
  if (!node && rows.length === 0) return;
  if (!node) {
    node = el('p', { id: 'orders-unreadable', class: 'msg msg-error', role: 'status', hidden: true });
    $('orders-error').after(node);
  }
  const ids = rows.slice(0, UNREADABLE_IDS).map((u) => u.id);
  if (rows.length > UNREADABLE_IDS) ids.push(`and ${rows.length - UNREADABLE_IDS} more`);
  const text = rows.length === 0 ? ''
    : `${rows.length} stored order${rows.length === 1 ? '' : 's'} could not be read (ids ${ids.join(', ')}).`;
  if (node.textContent !== text) showMsg('orders-unreadable', text);
  node.title = rows.map((u) => `${u.id}: ${u.reason}`).join('\n');
}

/** The filter's suggestions: every location seen, and PJM-RTO. */
function updateLocations(orders) {
  const list = $('locations');
  const names = [...new Set(['PJM-RTO', ...orders.map((o) => o.location)])].sort();
  if (list.dataset.names === names.join('|')) return;
  list.dataset.names = names.join('|');
  list.replaceChildren(...names.map((n) => el('option', { value: n })));
}

/** Refetches just after each of the next pending due times, whatever the event stream does. */
function armDueTimers(open, now) {
  const dues = [...new Set(open.map((o) => parseTime(o.hour_start_utc)))]
    .filter((t) => t !== null && t > now - 1000 && t - now < 10 * 60 * 1000)
    .sort((a, b) => a - b)
    .slice(0, 20);
  for (const t of dues) {
    if (tables.dueTimers.has(t)) continue;
    const fire = () => {
      tables.dueTimers.delete(t);
      scheduleRefresh(0);
    };
    tables.dueTimers.set(t, setTimeout(fire, Math.max(0, t - now) + 250));
  }
}

/** Advances the "Due in" column; called four times a second. */
export function tickRows(now) {
  for (const td of $('open-body').querySelectorAll('td.due-in')) {
    const due = Number(td.dataset.due);
    const text = Number.isFinite(due) ? (due > now ? fmtDuration(due - now) : 'due now') : '—';
    if (td.textContent !== text) td.textContent = text;
    td.classList.toggle('soon', Number.isFinite(due) && due - now < 10000);
  }
}

async function cancelOrder(o, button) {
  button.disabled = true;
  showMsg('orders-error', '');
  try {
    await api('POST', `/api/v1/orders/${encodeURIComponent(o.id)}/cancel`, '');
    setText('form-msg', `Cancelled the ${o.side} order due ${fmtUtc(parseTime(o.hour_start_utc))} UTC.`);
    $('orders-heading').focus();
  } catch (e) {
    button.disabled = false;
    showMsg('orders-error', `Could not cancel: ${e.detail}`);
  }
  scheduleRefresh(0);
}

/** The location filter: applied 300 ms after the last keystroke, or at once on Enter. */
export function initFilter() {
  let timer = null;
  const apply = () => {
    const value = $('f-filter').value.trim();
    if (value === tables.filter) return;
    tables.filter = value;
    refreshPositions();
  };
  $('f-filter').addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(apply, 300);
  });
  $('filter-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearTimeout(timer);
    apply();
  });
}
