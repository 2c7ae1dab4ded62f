// The order detail: every field, the P&L and the history timeline of one order, in a dialog
// opened by its link in the tables or by the address `/#/orders/ID` (deep-linkable), and
// refetched on every live refresh while it is open.

import { api } from './api.js';
import { $, badge, el, showMsg } from './dom.js';
import { fmtNum, fmtUtc, parseTime, pnlFmt, priceFmt, qtyFmt } from './format.js';

const ROUTE = /^#\/orders\/([A-Za-z0-9_-]{1,64})$/;

/** `id`: the order shown (null when closed); `seq` drops stale answers. */
const detail = { id: null, seq: 0 };

/** The address of an order's detail. */
export function orderHref(id) {
  return `#/orders/${encodeURIComponent(id)}`;
}

/** Opens or closes the dialog to match the address. */
function route() {
  const dialog = $('order-dialog');
  const m = ROUTE.exec(window.location.hash);
  if (!m) {
    detail.id = null;
    if (dialog.open) dialog.close();
    return;
  }
  const id = decodeURIComponent(m[1]);
  if (id !== detail.id) {
    detail.id = id;
    $('detail-fields').replaceChildren();
    $('detail-history').replaceChildren();
    $('detail-title').textContent = 'Order';
  }
  if (!dialog.open) dialog.showModal();
  refreshDetail();
}

/** Refetches the open order (the live feed calls it with every refresh). */
export async function refreshDetail() {
  if (!detail.id) return;
  const id = detail.id;
  const seq = ++detail.seq;
  try {
    const data = await api('GET', `/api/v1/orders/${encodeURIComponent(id)}`);
    if (seq !== detail.seq || id !== detail.id) return;
    showMsg('detail-error', '');
    render(data);
  } catch (e) {
    if (seq !== detail.seq || id !== detail.id) return;
    showMsg('detail-error', e.status === 404 ? `No order ${id}.` : `Order unavailable: ${e.detail}`);
  }
}

function time(iso, now) {
  const t = parseTime(iso);
  if (t === null) return '—';
  return el('time', { datetime: iso, title: iso }, `${fmtUtc(t, now)} UTC`);
}

function field(label, value, key) {
  return el('div', { dataset: { field: key } }, el('dt', {}, label), el('dd', {}, value));
}

function render(data) {
  const o = data.order;
  const now = Date.now();
  const dialog = $('order-dialog');
  dialog.dataset.orderId = o.id;
  dialog.dataset.status = o.status;
  $('detail-title').textContent = `${o.side} ${fmtNum(qtyFmt, o.qty_mwh)} MWh at ${o.location}`;
  const decided = typeof o.approval_rt_lmp === 'number';
  const pnl = typeof data.pnl === 'number'
    ? el('span', { class: data.pnl >= 0 ? 'pnl-pos' : 'pnl-neg' }, fmtNum(pnlFmt, data.pnl))
    : '—';
  $('detail-fields').replaceChildren(
    field('Status', badge(o.status), 'status'),
    field('Order id', el('code', {}, o.id), 'id'),
    field('Side', o.side, 'side'),
    field('Quantity (MWh)', fmtNum(qtyFmt, o.qty_mwh), 'qty_mwh'),
    field('Limit ($/MWh)', fmtNum(priceFmt, o.limit_price), 'limit_price'),
    field('Location', `${o.location} (${o.location_type})`, 'location'),
    field('Market', o.market || '—', 'market'),
    field('Due', time(o.hour_start_utc, now), 'hour_start_utc'),
    field('Created', time(o.created_at, now), 'created_at'),
    field('Decided', o.approved_at ? time(o.approved_at, now) : '—', 'approved_at'),
    field('RT LMP ($/MWh)', decided ? priceFmt.format(o.approval_rt_lmp) : '—', 'approval_rt_lmp'),
    field('RT interval', o.approval_rt_interval_start_utc ? time(o.approval_rt_interval_start_utc, now) : '—',
      'approval_rt_interval_start_utc'),
    field('Price source', o.approval_rt_source || '—', 'approval_rt_source'),
    field('Reject reason', o.reject_reason || '—', 'reject_reason'),
    field('P&L ($)', pnl, 'pnl'));
  const history = data.history || [];
  $('detail-history').replaceChildren(...history.map((e) => historyItem(e, now)));
  $('detail-history-empty').hidden = history.length > 0;
}

/** One history line: when, who, from → to, and the decision's inputs. */
function historyItem(e, now) {
  const inputs = Object.entries(e.details || {}).map(([k, v]) =>
    el('li', {}, el('span', { class: 'k' }, k), ' ',
      el('span', { class: 'v' }, typeof v === 'object' ? JSON.stringify(v) : String(v))));
  return el('li', { class: 'event', dataset: { to: e.to_status } },
    el('div', { class: 'event-head' },
      time(e.at, now), ' ',
      el('span', { class: 'transition' }, e.from_status ? badge(e.from_status) : '—', ' → ', badge(e.to_status)),
      ' ', el('span', { class: 'actor' }, `by ${e.actor}`)),
    inputs.length ? el('ul', { class: 'inputs' }, inputs) : '');
}

export function initDetail() {
  const dialog = $('order-dialog');
  window.addEventListener('hashchange', route);
  $('btn-detail-close').addEventListener('click', () => dialog.close());
  // Closing (button, Escape) leaves the address of the page, not of the order.
  dialog.addEventListener('close', () => {
    detail.id = null;
    if (ROUTE.test(window.location.hash)) {
      window.history.replaceState(null, '', window.location.pathname + window.location.search);
    }
  });
  route();
}
