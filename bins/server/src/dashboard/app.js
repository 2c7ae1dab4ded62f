// order-scheduler dashboard: the scheduler panel, the new-order form and the live order tables.
//
// Plain browser JavaScript, no build step and no dependency; served by the binary itself under
// a `default-src 'self'` Content-Security-Policy, so it never injects HTML (every node is built
// with createElement) and never talks to another origin.
//
// Live updates: `GET /api/v1/events` (server-sent events) triggers a debounced refetch of
// `/api/v1/positions` and the scheduler status. While the stream is unavailable the page polls
// every 2 s, and it always refetches just after each pending order's due time, so a moderation
// shows within a fraction of a second either way.
'use strict';

(() => {
  const TOKEN_KEY = 'order-scheduler.admin-token';
  const POLL_MS = 2000;
  const STATUS_LIVE_MS = 5000;
  const DEBOUNCE_MS = 200;
  const FIVE_MIN = 5 * 60 * 1000;
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const FORM_FIELDS = ['side', 'qty_mwh', 'limit_price', 'hour_start_utc', 'location', 'location_type'];

  const $ = (id) => document.getElementById(id);

  const state = {
    status: null,
    positions: null,
    posSeq: 0,
    statusSeq: 0,
    live: false,
    busy: false,
    offline: false,
    pollTimer: null,
    statusTimer: null,
    refreshTimer: null,
    lastRefresh: 0,
    es: null,
    retries: 0,
    dueTimers: new Map(),
    seenStatus: new Map(),
    flash: new Set(),
    filter: '',
    dueTouched: false,
    dueDefault: 0,
    activity: [],
  };
  const ACTIVITY_MAX = 8;

  // ---------------------------------------------------------------- formatting

  const pad = (n, w = 2) => String(n).padStart(w, '0');

  function parseTime(iso) {
    const t = iso ? Date.parse(iso) : NaN;
    return Number.isFinite(t) ? t : null;
  }

  /** `Nov 30, 10:45:40` (UTC), with `.123` when the time has milliseconds. */
  function fmtUtc(ms) {
    if (ms === null) return '—';
    const d = new Date(ms);
    const millis = d.getUTCMilliseconds() ? '.' + pad(d.getUTCMilliseconds(), 3) : '';
    return `${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()}, ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${millis}`;
  }

  /** `YYYY-MM-DDTHH:MM:SS` in UTC, the value format of a datetime-local input. */
  function toLocalInput(ms) {
    const d = new Date(ms);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }

  /** A duration for humans: `8.4 s`, `4 min 05 s`, `2 h 03 min`, `3 d 4 h`. */
  function fmtDuration(ms) {
    const s = Math.max(0, ms) / 1000;
    if (s < 10) return `${s.toFixed(1)} s`;
    if (s < 60) return `${Math.floor(s)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${pad(Math.floor(s % 60))} s`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h} h ${pad(m % 60)} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }

  /** A countdown clock: `04:05`, `1:02:03`. */
  function fmtClock(ms) {
    const total = Math.ceil(Math.max(0, ms) / 1000);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    return h ? `${h}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`;
  }

  const qtyFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 3 });
  const priceFmt = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const pnlFmt = new Intl.NumberFormat('en-US', {
    minimumFractionDigits: 2, maximumFractionDigits: 5, signDisplay: 'exceptZero',
  });
  const intFmt = new Intl.NumberFormat('en-US');

  const fmtNum = (f, v) => (typeof v === 'number' && Number.isFinite(v) ? f.format(v) : '—');

  // ---------------------------------------------------------------- DOM helpers

  /** Builds an element: `el('td', {class: 'num'}, 'text', child)`. Text is never parsed as HTML. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'dataset') Object.assign(node.dataset, v);
      else if (k === 'onclick') node.addEventListener('click', v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function setText(id, text, title) {
    const node = $(id);
    if (node.textContent !== text) node.textContent = text;
    if (title !== undefined) node.title = title || '';
  }

  function showMsg(id, text) {
    const node = $(id);
    node.textContent = text || '';
    node.hidden = !text;
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, detail) {
      super(detail);
      this.status = status;
      this.code = code;
      this.detail = detail;
    }
  }

  /**
   * Calls the API and returns its JSON. Errors become an ApiError with the server's `detail`
   * and `code`. An admin call answered 401 asks for the token (kept in sessionStorage only)
   * and retries.
   */
  async function api(method, path, body, admin = false) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const token = admin ? sessionStorage.getItem(TOKEN_KEY) : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    let res;
    try {
      res = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'same-origin' });
    } catch (e) {
      setOffline(true);
      throw new ApiError(0, 'network', 'cannot reach the server');
    }
    setOffline(false);
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = null;
    }
    if (res.ok) return data;
    if (admin && res.status === 401) {
      if (token) sessionStorage.removeItem(TOKEN_KEY);
      const fresh = await askToken(token ? 'The server refused that token.' : '');
      if (fresh) {
        sessionStorage.setItem(TOKEN_KEY, fresh);
        return api(method, path, body, admin);
      }
    }
    const detail = (data && data.detail) || `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, (data && data.code) || `http_${res.status}`, detail);
  }

  /** Shows the token dialog; resolves to the token, or null when cancelled. */
  function askToken(error) {
    const dialog = $('token-dialog');
    const input = $('f-token');
    $('token-error').textContent = error || '';
    input.value = '';
    return new Promise((resolve) => {
      const done = (value) => {
        dialog.removeEventListener('close', onClose);
        resolve(value);
      };
      const onClose = () => done(dialog.returnValue === 'ok' && input.value ? input.value : null);
      dialog.addEventListener('close', onClose);
      dialog.returnValue = '';
      dialog.showModal();
      input.focus();
    });
  }

  function initTokenDialog() {
    const dialog = $('token-dialog');
    $('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (!$('f-token').value) {
        $('token-error').textContent = 'Enter the admin token.';
        return;
      }
      dialog.close('ok');
    });
    $('btn-token-cancel').addEventListener('click', () => dialog.close(''));
  }

  // ---------------------------------------------------------------- feed indicator

  function renderFeed() {
    const feed = $('feed');
    let mode;
    let text;
    if (state.offline) {
      mode = 'offline';
      text = 'Server unreachable';
    } else if (state.live) {
      mode = 'live';
      text = 'Live';
    } else {
      mode = 'polling';
      text = 'Polling every 2 s';
    }
    if (feed.dataset.mode !== mode) {
      feed.dataset.mode = mode;
      feed.textContent = text;
    }
  }

  function setOffline(off) {
    if (state.offline !== off) {
      state.offline = off;
      renderFeed();
    }
  }

  // ---------------------------------------------------------------- scheduler panel

  async function refreshStatus() {
    const seq = ++state.statusSeq;
    try {
      const data = await api('GET', '/api/v1/scheduler/status');
      if (seq !== state.statusSeq) return;
      state.status = data && data.scheduler;
      renderStatus();
    } catch (e) {
      if (seq === state.statusSeq) showMsg('sched-error', `Status unavailable: ${e.detail}`);
    }
  }

  function renderStatus() {
    const s = state.status;
    if (!s) return;
    const pill = $('sched-state');
    const st = s.running ? 'running' : 'stopped';
    pill.dataset.state = s.last_error && s.running ? 'error' : st;
    pill.textContent = s.running ? 'Running' : 'Stopped';
    $('btn-start').disabled = !!s.running;
    $('btn-stop').disabled = !s.running;

    const thread = $('s-thread');
    thread.textContent = s.thread_alive ? 'Alive' : 'Not alive';
    thread.className = s.thread_alive ? 'ok' : 'bad';

    setText('s-due-now', fmtNum(intFmt, s.pending_due_now));
    setText('s-upcoming', fmtNum(intFmt, s.upcoming_10_min));
    setText('s-processed', fmtNum(intFmt, s.processed), s.failed ? `${s.failed} failed` : '');
    setText('s-approved', fmtNum(intFmt, s.approved));
    setText('s-rejected', fmtNum(intFmt, s.rejected));

    const l = s.lateness_ms || {};
    if (l.samples) {
      setText('s-lateness', `p50 ${l.p50} · p99 ${l.p99} · max ${l.max}`,
        `last ${l.last} ms; over the last ${l.samples} moderations`);
    } else {
      setText('s-lateness', 'no samples yet', '');
    }

    const next = parseTime(s.next_due_order);
    const nextNode = $('s-next');
    nextNode.textContent = next === null ? 'No pending order' : `${fmtUtc(next)} UTC`;
    if (next === null) nextNode.removeAttribute('datetime');
    else nextNode.setAttribute('datetime', s.next_due_order);

    if (s.last_error) showMsg('sched-error', `Last error: ${s.last_error}`);
    else showMsg('sched-error', '');
    tick();
  }

  function tickScheduler(now) {
    const s = state.status;
    if (!s) return;
    const next = parseTime(s.next_due_order);
    const cd = $('s-countdown');
    let text;
    let mode;
    if (next === null) {
      text = '—';
      mode = 'idle';
    } else if (next > now) {
      text = fmtClock(next - now);
      mode = next - now < 10000 ? 'soon' : 'wait';
    } else {
      text = s.running ? 'due now' : 'overdue';
      mode = 'due';
    }
    if (cd.textContent !== text) cd.textContent = text;
    if (cd.dataset.mode !== mode) cd.dataset.mode = mode;
    cd.setAttribute('aria-label', next === null ? 'no pending order' : `next order due ${text}`);

    const last = parseTime(s.last_check);
    setText('s-last-check', last === null ? 'never' : `${fmtDuration(now - last)} ago`,
      last === null ? '' : `${s.last_check}`);
  }

  async function control(action, button) {
    const names = { start: 'start', stop: 'stop', 'force-run': 'force-run' };
    if (state.busy) return;
    state.busy = true;
    button.setAttribute('aria-busy', 'true');
    showMsg('sched-error', '');
    try {
      const data = await api('POST', `/api/v1/scheduler/${action}`, undefined, true);
      const at = fmtUtc(Date.now()).split(', ')[1];
      setText('sched-msg', `${(data && data.message) || 'Done'} at ${at} UTC.`);
      if (data && data.scheduler) {
        state.status = data.scheduler;
        renderStatus();
      }
      if (action === 'force-run') scheduleRefresh(0);
      refreshStatus();
    } catch (e) {
      setText('sched-msg', '');
      showMsg('sched-error', `Could not ${names[action]} the scheduler: ${e.detail}`);
    } finally {
      state.busy = false;
      button.removeAttribute('aria-busy');
      // Start and Stop disable each other: keep the keyboard focus on the panel.
      if (button.disabled && document.activeElement !== button) {
        const other = action === 'start' ? $('btn-stop') : $('btn-start');
        if (!other.disabled) other.focus();
      }
    }
  }

  // ---------------------------------------------------------------- new order form

  /** The original UI's default: the next 5-minute mark + 45 s, at least 10 s ahead. */
  function defaultDue(now) {
    let t = Math.ceil(now / FIVE_MIN) * FIVE_MIN + 45000;
    while (t - now < 10000) t += FIVE_MIN;
    return t;
  }

  function resetDueDefault() {
    state.dueDefault = defaultDue(Date.now());
    state.dueTouched = false;
    $('f-due-at').value = toLocalInput(state.dueDefault);
  }

  function dueMode() {
    return $('due-mode-in').checked ? 'in' : 'at';
  }

  /** The due time the form would send now, as RFC 3339 text (or the raw text if unparseable). */
  function dueValue() {
    if (dueMode() === 'in') {
      const raw = $('f-due-in').value.trim();
      if (!/^\d+$/.test(raw) || Number(raw) > 86400) return { error: 'Enter whole seconds from 0 to 86400.' };
      return { value: new Date(Date.now() + Number(raw) * 1000).toISOString() };
    }
    const raw = $('f-due-at').value;
    if (!raw) return { value: '' };
    const withSeconds = /T\d\d:\d\d$/.test(raw) ? `${raw}:00` : raw;
    return { value: `${withSeconds}Z` };
  }

  function tickDueHint(now) {
    if (!state.dueTouched && dueMode() === 'at' && state.dueDefault - now < 10000) resetDueDefault();
    let text;
    if (dueMode() === 'in') {
      const raw = $('f-due-in').value.trim();
      text = /^\d+$/.test(raw) ? `Due ${raw} s after you place it.` : '';
    } else {
      const t = parseTime($('f-due-at').value ? `${$('f-due-at').value}Z` : '');
      if (t === null) text = '';
      else if (t > now) text = `Due in ${fmtDuration(t - now)}.`;
      else text = 'That time has passed: the order would be moderated at once.';
    }
    setText('due-hint', text);
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

  function fieldInput(field) {
    return {
      side: document.querySelector('input[name="side"]:checked'),
      qty_mwh: $('f-qty'),
      limit_price: $('f-price'),
      location: $('f-location'),
      location_type: $('f-location-type'),
      hour_start_utc: dueMode() === 'in' ? $('f-due-in') : $('f-due-at'),
    }[field];
  }

  function showFieldError(field, message) {
    const slot = $(`e-${field}`);
    const input = fieldInput(field);
    if (!slot) {
      showMsg('form-error', message);
      return;
    }
    slot.textContent = message;
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  }

  /**
   * Serialises the body by hand, remembering where each value starts, so a JSON decoding error
   * (`... at line 1 column 31`) can be pinned on the field it is about.
   */
  function encodeBody(obj) {
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

  /** Which form field an API error is about, and its message without the field prefix. */
  function locateError(detail, starts) {
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

  const capitalise = (s) => (s ? s[0].toUpperCase() + s.slice(1) : s);

  async function submitOrder(ev) {
    ev.preventDefault();
    clearFormErrors();
    setText('form-msg', '');
    const due = dueValue();
    if (due.error) {
      showFieldError('hour_start_utc', due.error);
      return;
    }
    const side = document.querySelector('input[name="side"]:checked');
    const body = {
      side: side ? side.value : '',
      // Sent as the typed text: the API reads decimal strings exactly.
      qty_mwh: $('f-qty').value.trim(),
      limit_price: $('f-price').value.trim(),
      hour_start_utc: due.value,
      location: $('f-location').value.trim(),
      location_type: $('f-location-type').value,
    };
    const { text, starts } = encodeBody(body);
    const button = $('btn-submit');
    button.disabled = true;
    try {
      const order = await api('POST', '/api/v1/orders', text);
      const msg = $('form-msg');
      msg.dataset.orderId = order.id;
      msg.textContent = `Placed ${order.side} ${qtyFmt.format(order.qty_mwh)} MWh at ` +
        `${priceFmt.format(order.limit_price)} $/MWh, due ${fmtUtc(parseTime(order.hour_start_utc))} UTC.`;
      state.flash.add(order.id);
      if (!state.dueTouched || dueMode() === 'at') resetDueDefault();
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

  function initForm() {
    resetDueDefault();
    $('order-form').addEventListener('submit', submitOrder);
    $('f-due-at').addEventListener('input', () => {
      state.dueTouched = true;
      $('due-mode-at').checked = true;
      tick();
    });
    $('f-due-at').addEventListener('focus', () => { $('due-mode-at').checked = true; tick(); });
    $('f-due-in').addEventListener('focus', () => { $('due-mode-in').checked = true; tick(); });
    $('f-due-in').addEventListener('input', () => { $('due-mode-in').checked = true; tick(); });
    $('due-mode-at').addEventListener('change', tick);
    $('due-mode-in').addEventListener('change', tick);
    $('btn-due-default').addEventListener('click', () => {
      resetDueDefault();
      $('due-mode-at').checked = true;
      tick();
    });
  }

  // ---------------------------------------------------------------- orders and positions

  /**
   * Refetches positions and status: at once when nothing was fetched in the last 200 ms,
   * otherwise once at the end of that window, so a burst of events costs one request pair.
   * `0` forces an immediate refetch.
   */
  function scheduleRefresh(delay = DEBOUNCE_MS) {
    const run = () => {
      clearTimeout(state.refreshTimer);
      state.refreshTimer = null;
      state.lastRefresh = Date.now();
      refreshPositions();
      refreshStatus();
    };
    if (delay === 0 || (!state.refreshTimer && Date.now() - state.lastRefresh >= delay)) {
      run();
    } else if (!state.refreshTimer) {
      state.refreshTimer = setTimeout(run, Math.max(0, state.lastRefresh + delay - Date.now()));
    }
  }

  async function refreshPositions() {
    const seq = ++state.posSeq;
    const q = new URLSearchParams({ limit: '200' });
    if (state.filter) q.set('location', state.filter);
    try {
      const data = await api('GET', `/api/v1/positions?${q}`);
      if (seq !== state.posSeq) return;
      state.positions = data;
      $('e-filter').textContent = '';
      $('f-filter').removeAttribute('aria-invalid');
      showMsg('orders-error', '');
      renderPositions();
    } catch (e) {
      if (seq !== state.posSeq) return;
      if (e.status === 400 && /location/.test(e.detail)) {
        $('e-filter').textContent = capitalise(e.detail.replace(/^location: /, ''));
        $('f-filter').setAttribute('aria-invalid', 'true');
      } else {
        showMsg('orders-error', `Orders unavailable: ${e.detail}`);
      }
    }
  }

  function badge(status) {
    return el('span', { class: 'badge', dataset: { status } }, status);
  }

  function sideTag(side) {
    return el('span', { class: 'side-tag', dataset: { side } }, side);
  }

  function locationCell(o) {
    return el('td', { class: 'loc' }, o.location, el('span', { class: 'loc-type' }, o.location_type));
  }

  function dueCell(o) {
    const t = parseTime(o.hour_start_utc);
    return el('td', { class: 'due-at' }, el('time', { datetime: o.hour_start_utc, title: o.hour_start_utc }, fmtUtc(t)));
  }

  function openRow(o) {
    const due = parseTime(o.hour_start_utc);
    const cancel = el('button', {
      type: 'button',
      class: 'btn btn-small btn-danger',
      'aria-label': `Cancel ${o.side} ${qtyFmt.format(o.qty_mwh)} MWh due ${fmtUtc(due)}`,
      onclick: () => cancelOrder(o, cancel),
    }, 'Cancel');
    return el('tr', { dataset: { orderId: o.id, status: o.status } },
      dueCell(o),
      el('td', { class: 'due-in', dataset: { due: String(due) } }, ''),
      el('td', {}, sideTag(o.side)),
      el('td', { class: 'num' }, fmtNum(qtyFmt, o.qty_mwh)),
      el('td', { class: 'num' }, fmtNum(priceFmt, o.limit_price)),
      locationCell(o),
      el('td', { class: 'status' }, badge(o.status)),
      el('td', { class: 'act' }, o.status === 'PENDING' ? cancel : ''));
  }

  function closedRow(o) {
    const approved = typeof o.approval_rt_lmp === 'number';
    const pnlCell = approved
      ? el('td', { class: `num pnl ${o.pnl >= 0 ? 'pnl-pos' : 'pnl-neg'}` }, fmtNum(pnlFmt, o.pnl))
      : el('td', { class: 'num pnl muted' }, '—');
    return el('tr', { dataset: { orderId: o.id, status: o.status } },
      dueCell(o),
      el('td', {}, sideTag(o.side)),
      el('td', { class: 'num' }, fmtNum(qtyFmt, o.qty_mwh)),
      el('td', { class: 'num' }, fmtNum(priceFmt, o.limit_price)),
      locationCell(o),
      el('td', { class: 'status' }, badge(o.status)),
      el('td', { class: 'num lmp' }, approved ? priceFmt.format(o.approval_rt_lmp) : '—'),
      el('td', { class: 'reason' }, o.reject_reason || ''),
      pnlCell);
  }

  /** What a row shows; a row is rebuilt only when this changes, so focus survives updates. */
  const signature = (o) => JSON.stringify([o.status, o.hour_start_utc, o.approval_rt_lmp, o.reject_reason, o.pnl,
    o.qty_mwh, o.limit_price, o.location, o.location_type]);

  function reconcile(tbody, orders, build) {
    const existing = new Map();
    for (const tr of tbody.children) existing.set(tr.dataset.orderId, tr);
    const wanted = new Set();
    orders.forEach((o, i) => {
      wanted.add(o.id);
      let tr = existing.get(o.id);
      const sig = signature(o);
      if (!tr || tr.dataset.sig !== sig) {
        const fresh = build(o);
        fresh.dataset.sig = sig;
        if (state.flash.has(o.id) || (state.seenStatus.has(o.id) && state.seenStatus.get(o.id) !== o.status)) {
          fresh.classList.add('flash');
          state.flash.delete(o.id);
        }
        if (tr) tr.replaceWith(fresh);
        tr = fresh;
      }
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    });
    for (const [id, tr] of existing) if (!wanted.has(id)) tr.remove();
  }

  function renderPositions() {
    const p = state.positions;
    if (!p) return;
    const open = p.open || [];
    const closed = p.closed || [];
    reconcile($('open-body'), open, openRow);
    reconcile($('closed-body'), closed, closedRow);
    for (const o of open.concat(closed)) state.seenStatus.set(o.id, o.status);
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
    setText('open-count', `${intFmt.format(open.length)}${open.length < (t.open_count || 0) ? ` of ${intFmt.format(t.open_count)}` : ''}`);
    setText('closed-count', `${intFmt.format(closed.length)}${closed.length < (t.closed_count || 0) ? ` of ${intFmt.format(t.closed_count)}` : ''}`);

    if (!state.filter) updateLocations(open.concat(closed));
    armDueTimers(open);
    if (state.activity.length) renderActivity();
    tick();
  }

  function updateLocations(orders) {
    const list = $('locations');
    const names = [...new Set(['PJM-RTO', ...orders.map((o) => o.location)])].sort();
    if (list.dataset.names === names.join('|')) return;
    list.dataset.names = names.join('|');
    list.replaceChildren(...names.map((n) => el('option', { value: n })));
  }

  /** Refetches just after each of the next pending due times, whatever the event stream does. */
  function armDueTimers(open) {
    const now = Date.now();
    const dues = [...new Set(open.map((o) => parseTime(o.hour_start_utc)))]
      .filter((t) => t !== null && t > now - 1000 && t - now < 10 * 60 * 1000)
      .sort((a, b) => a - b)
      .slice(0, 20);
    for (const t of dues) {
      if (state.dueTimers.has(t)) continue;
      const fire = () => {
        state.dueTimers.delete(t);
        scheduleRefresh(0);
      };
      state.dueTimers.set(t, setTimeout(fire, Math.max(0, t - now) + 250));
    }
  }

  function tickRows(now) {
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

  function initFilter() {
    let timer = null;
    const apply = () => {
      const value = $('f-filter').value.trim();
      if (value === state.filter) return;
      state.filter = value;
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

  // ---------------------------------------------------------------- activity list

  /** Remembers an event from the stream (newest first) and redraws the list. */
  function addActivity(item) {
    if (item.kind === 'order' && state.activity.some((a) => a.kind === 'order' && a.id === item.id)) return;
    state.activity.unshift(item);
    state.activity.length = Math.min(state.activity.length, ACTIVITY_MAX);
    renderActivity();
  }

  function findOrder(id) {
    const p = state.positions;
    if (!p) return null;
    return (p.open || []).find((o) => o.id === id) || (p.closed || []).find((o) => o.id === id) || null;
  }

  function describeOrder(e) {
    const o = findOrder(e.order_id) || e.details || {};
    if (!o.side) return `order …${String(e.order_id).slice(-8)}`;
    return `${o.side} ${fmtNum(qtyFmt, Number(o.qty_mwh))} MWh`;
  }

  function activityDetail(e) {
    const d = e.details || {};
    const at = parseTime(e.at);
    const due = parseTime(e.hour_start_utc);
    switch (e.to_status) {
      case 'PENDING':
        return due === null ? 'placed' : `placed, due ${fmtUtc(due).split(', ')[1]}`;
      case 'APPROVED': {
        const order = findOrder(e.order_id);
        const lmp = typeof d.rt_lmp === 'number' ? d.rt_lmp : order && order.approval_rt_lmp;
        const late = at !== null && due !== null ? `, ${Math.max(0, at - due)} ms after due` : '';
        return `${typeof lmp === 'number' ? `at ${priceFmt.format(lmp)} $/MWh` : 'approved'}${late}`;
      }
      case 'REJECTED': {
        const order = findOrder(e.order_id);
        const reason = d.reason || (order && order.reject_reason) || 'rejected';
        const late = at !== null && due !== null ? `, ${Math.max(0, at - due)} ms after due` : '';
        return `${reason}${late}`;
      }
      default:
        return e.from_status ? `from ${e.from_status}` : '';
    }
  }

  function renderActivity() {
    const list = $('activity');
    list.replaceChildren(...state.activity.map((item) => {
      const at = parseTime(item.at);
      const when = el('time', { datetime: item.at }, at === null ? '' : fmtUtc(at).split(', ')[1]);
      if (item.kind === 'scheduler') {
        const label = { started: 'Scheduler started', stopped: 'Scheduler stopped', error: 'Scheduler error' }[item.state]
          || `Scheduler ${item.state}`;
        return el('li', { dataset: { kind: 'scheduler', state: item.state } },
          el('div', { class: 'line' }, when,
            el('span', { class: 'pill', dataset: { state: item.state === 'started' ? 'running' : item.state } }, item.state),
            el('span', { class: 'what' }, label)),
          item.error ? el('div', { class: 'detail' }, item.error) : null);
      }
      return el('li', { dataset: { kind: 'order', orderId: item.order_id } },
        el('div', { class: 'line' }, when, badge(item.to_status), el('span', { class: 'what' }, describeOrder(item))),
        el('div', { class: 'detail' }, [(findOrder(item.order_id) || item.details || {}).location, activityDetail(item)]
          .filter(Boolean).join(' · ')));
    }));
    $('activity-empty').hidden = state.activity.length > 0;
  }

  // ---------------------------------------------------------------- live updates

  function startPolling() {
    state.live = false;
    renderFeed();
    if (state.pollTimer) return;
    state.pollTimer = setInterval(() => {
      refreshPositions();
      refreshStatus();
    }, POLL_MS);
  }

  function stopPolling() {
    clearInterval(state.pollTimer);
    state.pollTimer = null;
  }

  function parseData(ev) {
    try {
      return JSON.parse(ev.data);
    } catch (e) {
      return null;
    }
  }

  function connectEvents() {
    if (!('EventSource' in window)) {
      startPolling();
      return;
    }
    const es = new EventSource('/api/v1/events');
    state.es = es;
    es.addEventListener('open', () => {
      state.retries = 0;
      state.live = true;
      stopPolling();
      renderFeed();
      // Anything that changed while disconnected.
      scheduleRefresh(0);
    });
    es.addEventListener('order', (ev) => {
      const d = parseData(ev);
      if (d && d.order_id && d.to_status) addActivity({ kind: 'order', ...d });
      scheduleRefresh();
    });
    es.addEventListener('scheduler', (ev) => {
      const d = parseData(ev);
      if (d && d.state) addActivity({ kind: 'scheduler', ...d });
      if (d && d.state === 'error' && d.error) showMsg('sched-error', `Scheduler error: ${d.error}`);
      refreshStatus();
    });
    es.addEventListener('error', () => {
      startPolling();
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (the route is missing or refused): try again later, backing off.
        es.close();
        state.es = null;
        const delay = Math.min(60000, 2000 * 2 ** state.retries);
        state.retries += 1;
        setTimeout(connectEvents, delay);
      }
    });
  }

  // ---------------------------------------------------------------- clock

  function tick() {
    const now = Date.now();
    const d = new Date(now);
    const clock = $('clock');
    const text = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
    if (clock.textContent !== text) {
      clock.textContent = text;
      clock.setAttribute('datetime', d.toISOString());
    }
    tickScheduler(now);
    tickRows(now);
    tickDueHint(now);
  }

  // ---------------------------------------------------------------- start

  function init() {
    initTokenDialog();
    initForm();
    initFilter();
    $('btn-start').addEventListener('click', (e) => control('start', e.currentTarget));
    $('btn-stop').addEventListener('click', (e) => control('stop', e.currentTarget));
    $('btn-force').addEventListener('click', (e) => control('force-run', e.currentTarget));
    startPolling();
    refreshStatus();
    refreshPositions();
    state.statusTimer = setInterval(() => { if (state.live) refreshStatus(); }, STATUS_LIVE_MS);
    setInterval(tick, 250);
    tick();
    connectEvents();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
