// Live updates. `GET /api/v1/events` (server-sent events) triggers a debounced refetch of the
// tables and the scheduler status; while the stream is unavailable the page polls every 2 s.
// The feed indicator in the top bar says which of the two is on, or that the server is
// unreachable.

import { $ } from './dom.js';

const POLL_MS = 2000;
const STATUS_LIVE_MS = 5000;
const DEBOUNCE_MS = 200;

/** What the stream drives, set by `startLive`. */
let hooks = {
  refresh: () => {},
  refreshStatus: () => {},
  onOrderEvent: () => {},
  onSchedulerEvent: () => {},
};

const feed = { live: false, offline: false };
let pollTimer = null;
let retries = 0;
const debounce = { timer: null, last: 0 };

function renderFeed() {
  const node = $('feed');
  let mode = 'polling';
  let text = 'Polling every 2 s';
  if (feed.offline) {
    mode = 'offline';
    text = 'Server unreachable';
  } else if (feed.live) {
    mode = 'live';
    text = 'Live';
  }
  if (node.dataset.mode !== mode) {
    node.dataset.mode = mode;
    node.textContent = text;
  }
}

/** Whether the server answered the last API call (the API client reports it). */
export function setReachable(reachable) {
  if (feed.offline === reachable) {
    feed.offline = !reachable;
    renderFeed();
  }
}

/**
 * Refetches tables and status: at once when nothing was fetched in the last 200 ms,
 * otherwise once at the end of that window, so a burst of events costs one request pair.
 * `0` forces an immediate refetch.
 */
export function scheduleRefresh(delay = DEBOUNCE_MS) {
  const run = () => {
    clearTimeout(debounce.timer);
    debounce.timer = null;
    debounce.last = Date.now();
    hooks.refresh();
  };
  if (delay === 0 || (!debounce.timer && Date.now() - debounce.last >= delay)) {
    run();
  } else if (!debounce.timer) {
    debounce.timer = setTimeout(run, Math.max(0, debounce.last + delay - Date.now()));
  }
}

function startPolling() {
  feed.live = false;
  renderFeed();
  if (pollTimer) return;
  pollTimer = setInterval(() => hooks.refresh(), POLL_MS);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
}

function parseData(ev) {
  try {
    return JSON.parse(ev.data);
  } catch (e) {
    return null;
  }
}

function connect() {
  if (!('EventSource' in window)) {
    startPolling();
    return;
  }
  const es = new EventSource('/api/v1/events');
  es.addEventListener('open', () => {
    retries = 0;
    feed.live = true;
    stopPolling();
    renderFeed();
    // Anything that changed while disconnected.
    scheduleRefresh(0);
  });
  es.addEventListener('order', (ev) => {
    const d = parseData(ev);
    if (d && d.order_id && d.to_status) hooks.onOrderEvent(d);
    scheduleRefresh();
  });
  es.addEventListener('scheduler', (ev) => {
    const d = parseData(ev);
    if (d && d.state) hooks.onSchedulerEvent(d);
    hooks.refreshStatus();
  });
  es.addEventListener('error', () => {
    startPolling();
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (the route is missing or refused): try again later, backing off.
      es.close();
      const delay = Math.min(60000, 2000 * 2 ** retries);
      retries += 1;
      setTimeout(connect, delay);
    }
  });
}

/**
 * Polls until the event stream connects, then follows it; refreshes the status every 5 s
 * while live, since the stream carries no lateness or counters.
 */
export function startLive(wanted) {
  hooks = { ...hooks, ...wanted };
  startPolling();
  setInterval(() => {
    if (feed.live) hooks.refreshStatus();
  }, STATUS_LIVE_MS);
  connect();
}
