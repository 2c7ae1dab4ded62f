// The scheduler panel: state pill, controls, next due order with its countdown, counters.

import { api } from './api.js';
import { $, setText, showMsg } from './dom.js';
import { fmtCountdown, fmtDuration, fmtNum, fmtTime, fmtUtc, intFmt, parseTime } from './format.js';
import { scheduleRefresh } from './live.js';

/** The last status from the API; `seq` drops answers that arrive after a newer request's. */
const panel = { status: null, seq: 0, busy: false };

export async function refreshStatus() {
  const seq = ++panel.seq;
  try {
    const data = await api('GET', '/api/v1/scheduler/status');
    if (seq !== panel.seq) return;
    panel.status = data && data.scheduler;
    render();
  } catch (e) {
    if (seq === panel.seq) showMsg('sched-error', `Status unavailable: ${e.detail}`);
  }
}

function render() {
  const s = panel.status;
  if (!s) return;
  const now = Date.now();
  const pill = $('sched-state');
  pill.dataset.state = s.last_error && s.running ? 'error' : s.running ? 'running' : 'stopped';
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
  nextNode.textContent = next === null ? 'No pending order' : `${fmtUtc(next, now)} UTC`;
  if (next === null) nextNode.removeAttribute('datetime');
  else nextNode.setAttribute('datetime', s.next_due_order);

  // Shown when the server reports them (servers with a configurable policy do).
  for (const [key, box, node] of [['policy', 's-policy-box', 's-policy'], ['price_source', 's-source-box', 's-source']]) {
    const v = s[key];
    const text = v === undefined || v === null ? '' : typeof v === 'object' ? (v.name || v.kind || JSON.stringify(v)) : String(v);
    $(box).hidden = !text;
    setText(node, text || '—');
  }
  showMsg('sched-error', s.last_error ? `Last error: ${s.last_error}` : '');
  tickScheduler(now);
}

/** Advances the countdown and the "last check" age; called four times a second. */
export function tickScheduler(now) {
  const s = panel.status;
  if (!s) return;
  const next = parseTime(s.next_due_order);
  const cd = $('s-countdown');
  let text;
  let mode;
  if (next === null) {
    text = '—';
    mode = 'idle';
  } else if (next > now) {
    text = fmtCountdown(next - now);
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
  if (panel.busy) return;
  panel.busy = true;
  button.setAttribute('aria-busy', 'true');
  showMsg('sched-error', '');
  try {
    const data = await api('POST', `/api/v1/scheduler/${action}`, undefined, true);
    setText('sched-msg', `${(data && data.message) || 'Done'} at ${fmtTime(Date.now())} UTC.`);
    if (data && data.scheduler) {
      panel.status = data.scheduler;
      render();
    }
    if (action === 'force-run') scheduleRefresh(0);
    refreshStatus();
  } catch (e) {
    setText('sched-msg', '');
    showMsg('sched-error', `Could not ${action} the scheduler: ${e.detail}`);
  } finally {
    panel.busy = false;
    button.removeAttribute('aria-busy');
    // Start and Stop disable each other: keep the keyboard focus on the panel.
    if (button.disabled && document.activeElement !== button) {
      const other = action === 'start' ? $('btn-stop') : $('btn-start');
      if (!other.disabled) other.focus();
    }
  }
}

/** Shows an error the event stream reported before the next status fetch does. */
export function showSchedulerError(error) {
  showMsg('sched-error', `Scheduler error: ${error}`);
}

export function initScheduler() {
  $('btn-start').addEventListener('click', (e) => control('start', e.currentTarget));
  $('btn-stop').addEventListener('click', (e) => control('stop', e.currentTarget));
  $('btn-force').addEventListener('click', (e) => control('force-run', e.currentTarget));
}
