// order-scheduler dashboard, the entry module: wires the scheduler panel, the new-order form,
// the tables and the activity list to the live stream, and ticks the clocks.
//
// Plain browser JavaScript modules, no build step and no dependency; served by the binary
// itself under a `default-src 'self'` Content-Security-Policy, so the page never injects HTML
// (every node is built with createElement) and never talks to another origin.
//
// Modules: format.js (pure text functions, tested under Node), dom.js, api.js (fetch, errors,
// admin token), live.js (event stream, polling fallback, debounced refresh), scheduler.js
// (panel), form.js (new order), tables.js (orders and positions), activity.js (event list),
// detail.js (one order's fields and history at /#/orders/ID), parked.js (parked orders).

import { addActivity, renderActivity } from './activity.js';
import { initTokenDialog, setReachabilityListener } from './api.js';
import { initDetail, refreshDetail } from './detail.js';
import { $ } from './dom.js';
import { fmtWallClock } from './format.js';
import { initForm, tickDueHint } from './form.js';
import { setReachable, startLive } from './live.js';
import { initParked, refreshParked } from './parked.js';
import { initScheduler, refreshStatus, showSchedulerError, tickScheduler } from './scheduler.js';
import { initFilter, refreshPositions, setRenderListener, tickRows } from './tables.js';

const TICK_MS = 250;

function refreshAll() {
  refreshPositions();
  refreshStatus();
  refreshParked();
  refreshDetail();
}

function tick() {
  const now = Date.now();
  const clock = $('clock');
  const text = fmtWallClock(now);
  if (clock.textContent !== text) {
    clock.textContent = text;
    clock.setAttribute('datetime', new Date(now).toISOString());
  }
  tickScheduler(now);
  tickRows(now);
  tickDueHint(now);
}

function init() {
  setReachabilityListener(setReachable);
  setRenderListener(renderActivity);
  initTokenDialog();
  initForm();
  initFilter();
  initScheduler();
  initParked();
  initDetail();
  refreshAll();
  setInterval(tick, TICK_MS);
  tick();
  startLive({
    refresh: refreshAll,
    refreshStatus,
    onOrderEvent: (d) => addActivity({ kind: 'order', ...d }),
    onSchedulerEvent: (d) => {
      addActivity({ kind: 'scheduler', ...d });
      if (d.state === 'error' && d.error) showSchedulerError(d.error);
    },
  });
}

// Module scripts run after the document is parsed, so the elements are there.
init();
