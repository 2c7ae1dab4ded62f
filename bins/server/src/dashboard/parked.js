// The parked-orders panel: orders the scheduler set aside because it could not decode or
// decide them, with their count and reason; Retry (one or all) and Discard are admin calls.

import { api } from './api.js';
import { $, el, setText, showMsg } from './dom.js';
import { fmtUtc, intFmt, parseTime } from './format.js';
import { scheduleRefresh } from './live.js';

const parked = { seq: 0 };

export async function refreshParked() {
  const seq = ++parked.seq;
  try {
    const data = await api('GET', '/api/v1/parked?limit=50');
    if (seq !== parked.seq) return;
    render(data);
  } catch (e) {
    if (seq === parked.seq) showMsg('parked-error', `Parked orders unavailable: ${e.detail}`);
  }
}

function render(data) {
  const count = data.count || 0;
  const card = $('parked-card');
  card.dataset.count = String(count);
  setText('parked-count', intFmt.format(count));
  $('parked-empty').hidden = count > 0;
  $('btn-retry-all').disabled = count === 0;
  const now = Date.now();
  $('parked-body').replaceChildren(...(data.orders || []).map((p) => {
    const retry = el('button', {
      type: 'button', class: 'btn btn-small',
      'aria-label': `Retry parked order ${p.id}`,
      onclick: () => act(`/api/v1/parked/${encodeURIComponent(p.id)}/retry`, '', retry, 'Retried'),
    }, 'Retry');
    const discard = el('button', {
      type: 'button', class: 'btn btn-small btn-danger',
      'aria-label': `Discard parked order ${p.id}`,
      onclick: () => act(`/api/v1/parked/${encodeURIComponent(p.id)}/discard`,
        JSON.stringify({ reason: $('f-discard-reason').value.trim() }), discard, 'Discarded'),
    }, 'Discard');
    const due = parseTime(p.hour_start_utc);
    return el('tr', { dataset: { orderId: p.id } },
      el('td', {}, el('a', { href: `#/orders/${encodeURIComponent(p.id)}` }, p.id.slice(0, 8))),
      el('td', {}, due === null ? p.hour_start_utc : fmtUtc(due, now)),
      el('td', { class: 'reason' }, p.parked_reason),
      el('td', { class: 'act' }, retry, ' ', discard));
  }));
}

async function act(path, body, button, done) {
  button.disabled = true;
  showMsg('parked-error', '');
  try {
    const r = await api('POST', path, body, true);
    const n = r && typeof r.retried === 'number' ? ` ${r.retried}` : '';
    setText('parked-msg', `${done}${n}.`);
  } catch (e) {
    button.disabled = false;
    showMsg('parked-error', `${done === 'Discarded' ? 'Could not discard' : 'Could not retry'}: ${e.detail}`);
  }
  refreshParked();
  scheduleRefresh(0);
}

export function initParked() {
  $('btn-retry-all').addEventListener('click', (e) =>
    act('/api/v1/parked/retry', '', e.currentTarget, 'Retried'));
}
