// DOM helpers of the dashboard. Every node is built with createElement and text nodes, never
// from HTML text, so a row rendered from hostile order data cannot inject markup.

export const $ = (id) => document.getElementById(id);

/** Builds an element: `el('td', {class: 'num'}, 'text', child)`. Text is never parsed as HTML. */
export function el(tag, attrs, ...children) {
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

/** Sets a node's text (and title) only when it changes, so screen readers hear real changes. */
export function setText(id, text, title) {
  const node = $(id);
  if (node.textContent !== text) node.textContent = text;
  if (title !== undefined) node.title = title || '';
}

/** Shows a message paragraph, or hides it when the text is empty. */
export function showMsg(id, text) {
  const node = $(id);
  node.textContent = text || '';
  node.hidden = !text;
}

/** A status badge: `PENDING`, `APPROVED`… */
export function badge(status) {
  return el('span', { class: 'badge', dataset: { status } }, status);
}
