// Pure text functions of the dashboard: times, durations, numbers, the order body and the
// API's error messages. No DOM and no clock of its own (callers pass `now`), so
// `format.test.mjs` runs them under Node.

export const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** The fields of the order form, as the API names them. */
export const FORM_FIELDS = ['side', 'qty_mwh', 'limit_price', 'hour_start_utc', 'location', 'location_type'];

const FIVE_MIN = 5 * 60 * 1000;
const HOUR = 3600 * 1000;
/** From this length on, durations are told in days and hours (a clock would read `38790:36:22`). */
const DAYS_FROM = 48 * HOUR;

export const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Milliseconds since the epoch, or null when the text is missing or not a time. */
export function parseTime(iso) {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? t : null;
}

/** `10:45:40` (UTC), with `.123` when the time has milliseconds. */
export function fmtTime(ms) {
  if (ms === null) return '—';
  const d = new Date(ms);
  const millis = d.getUTCMilliseconds() ? '.' + pad(d.getUTCMilliseconds(), 3) : '';
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${millis}`;
}

/**
 * `Nov 30, 10:45:40` (UTC), with `.123` when the time has milliseconds, and the year
 * (`Mar 3, 2031, 10:45:40`) when it is not the year of `now`.
 */
export function fmtUtc(ms, now = Date.now()) {
  if (ms === null) return '—';
  const d = new Date(ms);
  const year = d.getUTCFullYear() === new Date(now).getUTCFullYear() ? '' : `, ${d.getUTCFullYear()}`;
  return `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}${year}, ${fmtTime(ms)}`;
}

/** The wall clock in the top bar: `10:45:40 UTC`. */
export function fmtWallClock(ms) {
  return `${fmtTime(ms - (ms % 1000))} UTC`;
}

/** `YYYY-MM-DDTHH:MM:SS` in UTC, the value format of a datetime-local input. */
export function toLocalInput(ms) {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** A duration for humans: `8.4 s`, `4 min 05 s`, `2 h 03 min`, `3 d 4 h`. */
export function fmtDuration(ms) {
  const s = Math.max(0, ms) / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${pad(Math.floor(s % 60))} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${pad(m % 60)} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/**
 * A countdown: `04:05`, `1:02:03`, and from 48 h on the same `3 d 4 h` as the tables'
 * "Due in" column, since a ticking clock of thousands of hours reads as noise.
 */
export function fmtCountdown(ms) {
  if (ms >= DAYS_FROM) return fmtDuration(ms);
  const total = Math.ceil(Math.max(0, ms) / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h ? `${h}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`;
}

export const qtyFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 3 });
export const priceFmt = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
export const pnlFmt = new Intl.NumberFormat('en-US', {
  minimumFractionDigits: 2, maximumFractionDigits: 5, signDisplay: 'exceptZero',
});
export const intFmt = new Intl.NumberFormat('en-US');

/** A number through one of the formats above, or `—` when it is not a finite number. */
export const fmtNum = (f, v) => (typeof v === 'number' && Number.isFinite(v) ? f.format(v) : '—');

/** `12` or `12 of 340`, when a list shows fewer rows than there are. */
export function fmtCount(shown, total) {
  return `${intFmt.format(shown)}${shown < (total || 0) ? ` of ${intFmt.format(total)}` : ''}`;
}

export const capitalise = (s) => (s ? s[0].toUpperCase() + s.slice(1) : s);

/** The original UI's default due time: the next 5-minute mark + 45 s, at least 10 s ahead. */
export function defaultDue(now) {
  let t = Math.ceil(now / FIVE_MIN) * FIVE_MIN + 45000;
  while (t - now < 10000) t += FIVE_MIN;
  return t;
}

/**
 * The due time to send, from the form's "in N seconds" text or its datetime-local value:
 * `{value}` (RFC 3339 text, or '' when empty) or `{error}`.
 */
export function dueFromInput(mode, raw, now) {
  if (mode === 'in') {
    const secs = raw.trim();
    if (!/^\d+$/.test(secs) || Number(secs) > 86400) return { error: 'Enter whole seconds from 0 to 86400.' };
    return { value: new Date(now + Number(secs) * 1000).toISOString() };
  }
  if (!raw) return { value: '' };
  const withSeconds = /T\d\d:\d\d$/.test(raw) ? `${raw}:00` : raw;
  return { value: `${withSeconds}Z` };
}

/** The line under the due-time inputs: when the order would fall due. */
export function dueHint(mode, raw, now) {
  if (mode === 'in') {
    const secs = raw.trim();
    return /^\d+$/.test(secs) ? `Due ${secs} s after you place it.` : '';
  }
  const t = parseTime(raw ? `${raw}Z` : '');
  if (t === null) return '';
  if (t > now) return `Due in ${fmtDuration(t - now)}.`;
  return 'That time has passed: the order would be moderated at once.';
}

/**
 * Serialises the body by hand, remembering where each value starts, so a JSON decoding error
 * (`... at line 1 column 31`) can be pinned on the field it is about.
 */
export function encodeBody(obj) {
  let text = '{';
  const starts = [];
  Object.entries(obj).forEach(([k, v], i) => {
    if (i) text += ',';
    text += `${JSON.stringify(k)}:`;
    starts.push([text.length, k]);
    text += JSON.stringify(v);
  });
  return { text: `${text}}`, starts };
}

/** Which form field an API error is about (or null), and its message without the field prefix. */
export function locateError(detail, starts) {
  const prefix = /^([a-z_]+): (.*)$/s.exec(detail);
  if (prefix && FORM_FIELDS.includes(prefix[1])) return [prefix[1], capitalise(prefix[2])];
  const pos = / at line \d+ column (\d+)$/.exec(detail);
  const message = capitalise(detail.replace(/ at line \d+ column \d+$/, '').replace(/\s+/g, ' '));
  for (const f of FORM_FIELDS) {
    if (new RegExp(`\\b${f}\\b`).test(detail)) return [f, message];
  }
  if (pos) {
    const col = Number(pos[1]);
    let field = null;
    for (const [start, name] of starts) if (start < col) field = name;
    if (field) return [field, message];
  }
  return [null, message];
}

/** The text of an activity entry's second line for an order event. */
export function orderEventDetail(e, order, now) {
  const d = e.details || {};
  const at = parseTime(e.at);
  const due = parseTime(e.hour_start_utc);
  const late = at !== null && due !== null ? `, ${Math.max(0, at - due)} ms after due` : '';
  switch (e.to_status) {
    case 'PENDING':
      return due === null ? 'placed' : `placed, due ${dueShort(due, now)}`;
    case 'APPROVED': {
      const lmp = typeof d.rt_lmp === 'number' ? d.rt_lmp : order && order.approval_rt_lmp;
      return `${typeof lmp === 'number' ? `at ${priceFmt.format(lmp)} $/MWh` : 'approved'}${late}`;
    }
    case 'REJECTED':
      return `${d.reason || (order && order.reject_reason) || 'rejected'}${late}`;
    default:
      return e.from_status ? `from ${e.from_status}` : '';
  }
}

/** A due time in a short line: the time of day when it is today, the full date otherwise. */
function dueShort(due, now) {
  const sameDay = new Date(due).toISOString().slice(0, 10) === new Date(now).toISOString().slice(0, 10);
  return sameDay ? fmtTime(due) : fmtUtc(due, now);
}

/** `BUY 2.5 MWh`, or the end of the id when the order is not known. */
export function describeOrder(e, order) {
  const o = order || e.details || {};
  if (!o.side) return `order …${String(e.order_id).slice(-8)}`;
  return `${o.side} ${fmtNum(qtyFmt, Number(o.qty_mwh))} MWh`;
}
