// The "New order" form: side, quantity, price, location and the due time (at a UTC time, or in
// N seconds), with the API's validation errors shown under the field they are about; and the
// shortcut that places the same order for each of the 24 hours of tomorrow (UTC) in one batch.

import { api } from './api.js';
import { $, setText, showMsg } from './dom.js';
import {
  FORM_FIELDS, defaultDue, dueFromInput, dueHint, encodeBody, fmtUtc, locateError, parseTime,
  priceFmt, qtyFmt, toLocalInput,
} from './format.js';
import { scheduleRefresh } from './live.js';
import { refreshStatus } from './scheduler.js';
import { flashOrder } from './tables.js';

/**
 * `defaultAt`: the default due time shown; `touched`: whether the user edited the due time
 * (an untouched default moves forward before it gets too close).
 */
const due = { defaultAt: 0, touched: false };

function resetDueDefault() {
  due.defaultAt = defaultDue(Date.now());
  due.touched = false;
  $('f-due-at').value = toLocalInput(due.defaultAt);
}

function dueMode() {
  return $('due-mode-in').checked ? 'in' : 'at';
}

function dueInput() {
  return dueMode() === 'in' ? $('f-due-in') : $('f-due-at');
}

/** Keeps the default due time ahead and the hint under it current; called four times a second. */
export function tickDueHint(now) {
  if (!due.touched && dueMode() === 'at' && due.defaultAt - now < 10000) resetDueDefault();
  setText('due-hint', dueHint(dueMode(), dueInput().value, now));
}

function fieldInput(field) {
  if (field === 'side') return document.querySelector('input[name="side"]:checked');
  if (field === 'hour_start_utc') return dueInput();
  const ids = { qty_mwh: 'f-qty', limit_price: 'f-price', location: 'f-location', location_type: 'f-location-type' };
  return ids[field] ? $(ids[field]) : null;
}

function clearFormErrors() {
  for (const f of FORM_FIELDS) {
    const node = $(`e-${f}`);
    if (node) node.textContent = '';
    const input = fieldInput(f);
    if (input) input.removeAttribute('aria-invalid');
  }
  showMsg('form-error', '');
}

function showFieldError(field, message) {
  const slot = $(`e-${field}`);
  if (!slot) {
    showMsg('form-error', message);
    return;
  }
  slot.textContent = message;
  const input = fieldInput(field);
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }
}

/** The form's order, due at `hourStartUtc`, as the API's body fields. */
function formOrder(hourStartUtc) {
  const side = document.querySelector('input[name="side"]:checked');
  return {
    side: side ? side.value : '',
    // Sent as the typed text: the API reads decimal strings exactly.
    qty_mwh: $('f-qty').value.trim(),
    limit_price: $('f-price').value.trim(),
    hour_start_utc: hourStartUtc,
    location: $('f-location').value.trim(),
    location_type: $('f-location-type').value,
  };
}

async function submitOrder(ev) {
  ev.preventDefault();
  clearFormErrors();
  setText('form-msg', '');
  const when = dueFromInput(dueMode(), dueInput().value, Date.now());
  if (when.error) {
    showFieldError('hour_start_utc', when.error);
    return;
  }
  const { text, starts } = encodeBody(formOrder(when.value));
  const button = $('btn-submit');
  button.disabled = true;
  try {
    const order = await api('POST', '/api/v1/orders', text);
    const msg = $('form-msg');
    delete msg.dataset.batchCount;
    msg.dataset.orderId = order.id;
    msg.textContent = `Placed ${order.side} ${qtyFmt.format(order.qty_mwh)} MWh at ` +
      `${priceFmt.format(order.limit_price)} $/MWh, due ${fmtUtc(parseTime(order.hour_start_utc))} UTC.`;
    flashOrder(order.id);
    if (!due.touched || dueMode() === 'at') resetDueDefault();
    scheduleRefresh(0);
    refreshStatus();
  } catch (e) {
    if (e.status === 400) {
      const [field, message] = locateError(e.detail, starts);
      if (field) showFieldError(field, message);
      else showMsg('form-error', message);
    } else {
      showMsg('form-error', `The order was not placed: ${e.detail}`);
    }
  } finally {
    button.disabled = false;
  }
}

/** The 24 hour starts of the UTC day after the one containing `now`, as RFC 3339 texts. */
export function tomorrowHours(now) {
  const d = new Date(now);
  return Array.from({ length: 24 }, (_, h) =>
    new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1, h)).toISOString());
}

/**
 * Places the form's order (its due time aside) once for each hour of tomorrow, UTC, in one
 * `POST /api/v1/orders/batch`: the server validates all 24 before writing any, so the book
 * goes in whole or not at all.
 */
async function submitTomorrow() {
  clearFormErrors();
  setText('form-msg', '');
  const hours = tomorrowHours(Date.now());
  const orders = hours.map(formOrder);
  const button = $('btn-tomorrow');
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    const created = await api('POST', '/api/v1/orders/batch', JSON.stringify(orders));
    const first = created[0];
    const msg = $('form-msg');
    delete msg.dataset.orderId;
    msg.dataset.batchCount = String(created.length);
    msg.textContent = `Placed ${created.length} orders: ${first.side} ` +
      `${qtyFmt.format(first.qty_mwh)} MWh at ${priceFmt.format(first.limit_price)} $/MWh, ` +
      `due every hour from ${fmtUtc(parseTime(hours[0]))} to ${fmtUtc(parseTime(hours[23]))} UTC.`;
    scheduleRefresh(0);
    refreshStatus();
  } catch (e) {
    // Every element carries the same form values, so `orders[i].limit_price: ...` is about
    // the form's price field.
    const detail = e.status === 400 ? e.detail.replace(/^orders\[\d+\]\.?/, '') : '';
    const [field, message] = detail ? locateError(detail, []) : [null, ''];
    if (field && field !== 'hour_start_utc') showFieldError(field, message);
    else showMsg('form-error', `The orders were not placed: ${e.detail}`);
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

export function initForm() {
  const tick = () => tickDueHint(Date.now());
  const choose = (mode) => () => {
    $(`due-mode-${mode}`).checked = true;
    tick();
  };
  resetDueDefault();
  $('order-form').addEventListener('submit', submitOrder);
  $('btn-tomorrow').addEventListener('click', submitTomorrow);
  $('f-due-at').addEventListener('input', () => {
    due.touched = true;
    choose('at')();
  });
  $('f-due-at').addEventListener('focus', choose('at'));
  $('f-due-in').addEventListener('focus', choose('in'));
  $('f-due-in').addEventListener('input', choose('in'));
  $('due-mode-at').addEventListener('change', tick);
  $('due-mode-in').addEventListener('change', tick);
  $('btn-due-default').addEventListener('click', () => {
    resetDueDefault();
    choose('at')();
  });
}
