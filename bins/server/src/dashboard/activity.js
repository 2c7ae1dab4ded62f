// The "Live activity" list: the last eight events of the stream, newest first.

import { $, badge, el } from './dom.js';
import { describeOrder, fmtTime, orderEventDetail, parseTime } from './format.js';
import { findOrder } from './tables.js';

const MAX_ITEMS = 8;

/** The events shown, newest first: `{kind: 'order' | 'scheduler', ...event}`. */
const items = [];

/** Remembers an event from the stream and redraws the list. */
export function addActivity(item) {
  if (item.kind === 'order' && items.some((a) => a.kind === 'order' && a.id === item.id)) return;
  items.unshift(item);
  items.length = Math.min(items.length, MAX_ITEMS);
  renderActivity();
}

function schedulerItem(item, when) {
  const labels = { started: 'Scheduler started', stopped: 'Scheduler stopped', error: 'Scheduler error' };
  const pillState = item.state === 'started' ? 'running' : item.state;
  return el('li', { dataset: { kind: 'scheduler', state: item.state } },
    el('div', { class: 'line' }, when,
      el('span', { class: 'pill', dataset: { state: pillState } }, item.state),
      el('span', { class: 'what' }, labels[item.state] || `Scheduler ${item.state}`)),
    item.error ? el('div', { class: 'detail' }, item.error) : null);
}

function orderItem(item, when, now) {
  const order = findOrder(item.order_id);
  const location = (order || item.details || {}).location;
  return el('li', { dataset: { kind: 'order', orderId: item.order_id } },
    el('div', { class: 'line' }, when, badge(item.to_status),
      el('span', { class: 'what' }, describeOrder(item, order))),
    el('div', { class: 'detail' },
      [location, orderEventDetail(item, order, now)].filter(Boolean).join(' · ')));
}

/** Redraws the list (also after the tables change: entries show the orders' current data). */
export function renderActivity() {
  if (!items.length) return;
  const now = Date.now();
  $('activity').replaceChildren(...items.map((item) => {
    const at = parseTime(item.at);
    const when = el('time', { datetime: item.at }, at === null ? '' : fmtTime(at));
    return item.kind === 'scheduler' ? schedulerItem(item, when) : orderItem(item, when, now);
  }));
  $('activity-empty').hidden = true;
}
