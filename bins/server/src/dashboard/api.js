// The API client: JSON in and out, the server's `{detail, code}` errors as ApiError, and the
// admin token, asked for in a dialog on a 401 and kept in sessionStorage only.

import { $ } from './dom.js';

const TOKEN_KEY = 'order-scheduler.admin-token';

/** An API call that failed: HTTP status (0 when the server was unreachable), code, detail. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/** Told whether the server answers, after every call (the feed indicator listens). */
let onReachable = () => {};

export function setReachabilityListener(listener) {
  onReachable = listener;
}

/**
 * Calls the API and returns its JSON. Errors become an ApiError with the server's `detail`
 * and `code`. An admin call answered 401 asks for the token and retries.
 */
export async function api(method, path, body, admin = false) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const token = admin ? sessionStorage.getItem(TOKEN_KEY) : null;
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'same-origin' });
  } catch (e) {
    onReachable(false);
    throw new ApiError(0, 'network', 'cannot reach the server');
  }
  onReachable(true);
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
    const onClose = () => {
      dialog.removeEventListener('close', onClose);
      resolve(dialog.returnValue === 'ok' && input.value ? input.value : null);
    };
    dialog.addEventListener('close', onClose);
    dialog.returnValue = '';
    dialog.showModal();
    input.focus();
  });
}

/** Wires the token dialog's buttons. */
export function initTokenDialog() {
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
