// Tests of the dashboard's pure text functions: `node --test format.test.mjs` (run by
// bins/server/tests/dashboard_format.rs). Not served: the server embeds only the files listed
// in routes/dashboard.rs.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  defaultDue, describeOrder, dueFromInput, dueHint, encodeBody, fmtCount, fmtCountdown,
  fmtDuration, fmtNum, fmtTime, fmtUtc, fmtWallClock, locateError, orderEventDetail, parseTime,
  pnlFmt, priceFmt, qtyFmt, toLocalInput,
} from './format.js';

const SEC = 1000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const NOW = Date.parse('2026-11-30T10:45:40Z');

test('parseTime reads RFC 3339 and refuses the rest', () => {
  assert.equal(parseTime('2026-11-30T10:45:40Z'), NOW);
  assert.equal(parseTime(''), null);
  assert.equal(parseTime(null), null);
  assert.equal(parseTime('not a time'), null);
});

test('fmtUtc shows the year only when it is not the current one', () => {
  assert.equal(fmtUtc(NOW, NOW), 'Nov 30, 10:45:40');
  assert.equal(fmtUtc(NOW + 123, NOW), 'Nov 30, 10:45:40.123');
  assert.equal(fmtUtc(Date.parse('2031-03-03T07:05:09Z'), NOW), 'Mar 3, 2031, 07:05:09');
  assert.equal(fmtUtc(Date.parse('2025-12-31T23:59:59Z'), NOW), 'Dec 31, 2025, 23:59:59');
  // The year of `now` in UTC decides, not the local one.
  assert.equal(fmtUtc(Date.parse('2027-01-01T00:00:00Z'), Date.parse('2026-12-31T23:59:59Z')),
    'Jan 1, 2027, 00:00:00');
  assert.equal(fmtUtc(null, NOW), '—');
});

test('fmtTime and the wall clock', () => {
  assert.equal(fmtTime(NOW), '10:45:40');
  assert.equal(fmtTime(NOW + 7), '10:45:40.007');
  assert.equal(fmtTime(null), '—');
  assert.equal(fmtWallClock(NOW + 999), '10:45:40 UTC');
});

test('toLocalInput is the datetime-local value in UTC', () => {
  assert.equal(toLocalInput(Date.parse('2031-03-03T07:05:09.250Z')), '2031-03-03T07:05:09');
});

test('fmtDuration picks the unit by length', () => {
  assert.equal(fmtDuration(-5), '0.0 s');
  assert.equal(fmtDuration(8400), '8.4 s');
  assert.equal(fmtDuration(42 * SEC), '42 s');
  assert.equal(fmtDuration(4 * MIN + 5 * SEC), '4 min 05 s');
  assert.equal(fmtDuration(2 * HOUR + 3 * MIN), '2 h 03 min');
  assert.equal(fmtDuration(47 * HOUR + 59 * MIN), '47 h 59 min');
  assert.equal(fmtDuration(3 * DAY + 4 * HOUR + 59 * MIN), '3 d 4 h');
  assert.equal(fmtDuration(1616 * DAY + 6 * HOUR + 36 * MIN), '1616 d 6 h');
});

test('fmtCountdown is a clock under 48 h', () => {
  assert.equal(fmtCountdown(0), '00:00');
  assert.equal(fmtCountdown(-1), '00:00');
  assert.equal(fmtCountdown(4 * MIN + 4.2 * SEC), '04:05');
  assert.equal(fmtCountdown(HOUR + 2 * MIN + 3 * SEC), '1:02:03');
  assert.equal(fmtCountdown(47 * HOUR + 59 * MIN + 59 * SEC), '47:59:59');
});

test('fmtCountdown says days like the table from 48 h on', () => {
  // Issue 16 point 7: an order due years ahead read `38790:36:22` beside the table's `1616 d 6 h`.
  const far = 38790 * HOUR + 36 * MIN + 22 * SEC;
  assert.equal(fmtCountdown(far), '1616 d 6 h');
  for (const ms of [48 * HOUR, 48 * HOUR + 1, 3 * DAY + 5 * HOUR, far, 400 * DAY]) {
    assert.equal(fmtCountdown(ms), fmtDuration(ms), `at ${ms} ms`);
  }
  assert.equal(fmtCountdown(48 * HOUR), '2 d 0 h');
});

test('numbers', () => {
  assert.equal(fmtNum(qtyFmt, 2.5), '2.5');
  assert.equal(fmtNum(qtyFmt, 1234.5678), '1,234.568');
  assert.equal(fmtNum(priceFmt, 40), '40.00');
  assert.equal(fmtNum(pnlFmt, 12.5), '+12.50');
  assert.equal(fmtNum(pnlFmt, -0.00001), '-0.00001');
  assert.equal(fmtNum(pnlFmt, 0), '0.00');
  assert.equal(fmtNum(priceFmt, null), '—');
  assert.equal(fmtNum(priceFmt, NaN), '—');
  assert.equal(fmtNum(priceFmt, '40'), '—');
  assert.equal(fmtCount(12, 12), '12');
  assert.equal(fmtCount(200, 1340), '200 of 1,340');
  assert.equal(fmtCount(0, undefined), '0');
});

test('defaultDue: next 5-minute mark + 45 s, at least 10 s ahead', () => {
  assert.equal(defaultDue(Date.parse('2026-11-30T10:42:00Z')), Date.parse('2026-11-30T10:45:45Z'));
  assert.equal(defaultDue(Date.parse('2026-11-30T10:45:40Z')), Date.parse('2026-11-30T10:50:45Z'));
  assert.equal(defaultDue(Date.parse('2026-11-30T10:45:00.001Z')), Date.parse('2026-11-30T10:50:45Z'));
  assert.equal(defaultDue(Date.parse('2026-11-30T10:45:00Z')), Date.parse('2026-11-30T10:45:45Z'));
});

test('dueFromInput and dueHint', () => {
  assert.deepEqual(dueFromInput('in', ' 3 ', NOW), { value: '2026-11-30T10:45:43.000Z' });
  assert.ok(dueFromInput('in', '-1', NOW).error);
  assert.ok(dueFromInput('in', '86401', NOW).error);
  assert.ok(dueFromInput('in', '1.5', NOW).error);
  assert.deepEqual(dueFromInput('at', '2031-03-03T07:05', NOW), { value: '2031-03-03T07:05:00Z' });
  assert.deepEqual(dueFromInput('at', '2031-03-03T07:05:09', NOW), { value: '2031-03-03T07:05:09Z' });
  assert.deepEqual(dueFromInput('at', '', NOW), { value: '' });

  assert.equal(dueHint('in', '10', NOW), 'Due 10 s after you place it.');
  assert.equal(dueHint('in', 'x', NOW), '');
  assert.equal(dueHint('at', '2026-11-30T10:50:45', NOW), 'Due in 5 min 05 s.');
  assert.equal(dueHint('at', '2026-11-30T10:00:00', NOW),
    'That time has passed: the order would be moderated at once.');
  assert.equal(dueHint('at', '', NOW), '');
});

test('encodeBody and locateError pin an API error on its field', () => {
  const { text, starts } = encodeBody({ side: 'BUY', qty_mwh: '2.5', limit_price: 'x' });
  assert.equal(text, '{"side":"BUY","qty_mwh":"2.5","limit_price":"x"}');
  assert.deepEqual(JSON.parse(text), { side: 'BUY', qty_mwh: '2.5', limit_price: 'x' });
  assert.deepEqual(starts, [[8, 'side'], [24, 'qty_mwh'], [44, 'limit_price']]);

  assert.deepEqual(locateError('qty_mwh: must be greater than 0 and at most 10000 MWh', starts),
    ['qty_mwh', 'Must be greater than 0 and at most 10000 MWh']);
  assert.deepEqual(locateError('invalid value for limit_price', starts),
    ['limit_price', 'Invalid value for limit_price']);
  // Only a position: the field whose value starts before that column.
  assert.deepEqual(locateError('invalid type: expected a decimal at line 1 column 30', starts),
    ['qty_mwh', 'Invalid type: expected a decimal']);
  assert.deepEqual(locateError('something   else', starts), [null, 'Something else']);
});

test('activity lines', () => {
  const e = { order_id: '0190-aaaa-bbbbcccc', at: '2026-11-30T10:45:40.012Z', hour_start_utc: '2026-11-30T10:45:40Z' };
  assert.equal(describeOrder(e, { side: 'BUY', qty_mwh: 2.5 }), 'BUY 2.5 MWh');
  assert.equal(describeOrder({ ...e, details: { side: 'SELL', qty_mwh: '1.25' } }, null), 'SELL 1.25 MWh');
  assert.equal(describeOrder(e, null), 'order …bbbbcccc');

  assert.equal(orderEventDetail({ ...e, to_status: 'PENDING' }, null, NOW), 'placed, due 10:45:40');
  assert.equal(orderEventDetail({ ...e, to_status: 'PENDING', hour_start_utc: '2031-03-03T07:05:09Z' }, null, NOW),
    'placed, due Mar 3, 2031, 07:05:09');
  assert.equal(orderEventDetail({ ...e, to_status: 'APPROVED', details: { rt_lmp: 38.1 } }, null, NOW),
    'at 38.10 $/MWh, 12 ms after due');
  assert.equal(orderEventDetail({ ...e, to_status: 'APPROVED' }, { approval_rt_lmp: 40 }, NOW),
    'at 40.00 $/MWh, 12 ms after due');
  assert.equal(orderEventDetail({ ...e, to_status: 'REJECTED', details: { reason: 'LMP above limit' } }, null, NOW),
    'LMP above limit, 12 ms after due');
  assert.equal(orderEventDetail({ ...e, to_status: 'CANCELLED', from_status: 'PENDING' }, null, NOW),
    'from PENDING');
});
