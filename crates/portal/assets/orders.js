// Recent orders: GET /orders, newest first, one page at a time.

import { NetworkError, bindKeyField, errorMessage, request } from './api.js';
import { byId, formatAgo, formatTime, h, replaceChildren } from './dom.js';
import { formatMoney } from './money.js';

const PAGE_SIZE = 20;

const list = byId('order-list');
const loadMore = byId('load-more');
const refresh = byId('refresh');
const errorBox = byId('orders-error');

let nextCursor = null;
let loading = false;

function orderCard(order) {
  const items = Array.isArray(order.items) ? order.items : [];
  const currency = typeof order.currency === 'string' ? order.currency : '';
  const units = items.reduce((sum, item) => sum + (Number.isInteger(item.quantity) ? item.quantity : 0), 0);

  const lineRows = items.map((item) =>
    h(
      'tr',
      {},
      h('td', {}, h('code', {}, item.sku)),
      h('td', { class: 'num' }, String(item.quantity)),
      h('td', { class: 'num' }, formatMoney(item.unitPrice, currency)),
    ),
  );
  const facts = [
    ['Customer', order.customerId],
    ['E-mail', order.customerEmail],
    ['Ship to', order.shippingAddress && address(order.shippingAddress)],
    ['Notes', order.notes],
    ['Received', order.receivedAt && formatTime(order.receivedAt)],
    ['Stored', order.storedAt && formatTime(order.storedAt)],
  ].filter(([, value]) => value);

  return h(
    'li',
    {},
    h(
      'details',
      { class: 'order-card', 'data-order-id': order.orderID },
      h(
        'summary',
        {},
        h('span', { class: 'order-id' }, order.orderID),
        h('span', { class: 'order-customer' }, order.customerId),
        h('span', { class: 'order-when', title: formatTime(order.storedAt) }, formatAgo(order.storedAt)),
        h('span', { class: 'order-total' }, order.total !== undefined ? formatMoney(order.total, currency) : '—'),
        h('span', { class: `badge ${order.status === 'STORED' ? 'badge-ok' : 'badge-muted'}` }, order.status ?? '—'),
      ),
      h(
        'div',
        { class: 'order-body' },
        h(
          'table',
          { class: 'line-items' },
          h('caption', { class: 'sr-only' }, `Items of order ${order.orderID}`),
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'SKU'), h('th', { scope: 'col', class: 'num' }, 'Quantity'), h('th', { scope: 'col', class: 'num' }, 'Unit price'))),
          h('tbody', {}, lineRows),
        ),
        h('p', { class: 'muted' }, `${items.length} ${items.length === 1 ? 'line' : 'lines'}, ${units} ${units === 1 ? 'unit' : 'units'}`),
        h('dl', { class: 'kv' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      ),
    ),
  );
}

function address(a) {
  return [a.line1, [a.postalCode, a.city].filter(Boolean).join(' '), a.country].filter(Boolean).join('\n');
}

async function load({ append }) {
  if (loading) return;
  loading = true;
  refresh.disabled = true;
  loadMore.disabled = true;
  list.setAttribute('aria-busy', 'true');
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (append && nextCursor) query.set('cursor', nextCursor);
  try {
    const response = await request(`/orders?${query}`);
    if (!response.ok || !Array.isArray(response.data?.orders)) {
      throw new Error(errorMessage(response, 'The server did not return the orders'));
    }
    const cards = response.data.orders.map(orderCard);
    if (append) list.append(...cards);
    else replaceChildren(list, cards);
    nextCursor = typeof response.data.nextCursor === 'string' ? response.data.nextCursor : null;
    loadMore.hidden = !nextCursor;
    byId('orders-empty').hidden = list.childElementCount > 0;
    errorBox.hidden = true;
    byId('orders-updated').textContent = `${list.childElementCount} shown · updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    byId('orders-error-text').textContent =
      error instanceof NetworkError ? `${error.message}. Check your connection and press Refresh.` : `${error.message}.`;
    errorBox.hidden = false;
  } finally {
    loading = false;
    refresh.disabled = false;
    loadMore.disabled = false;
    list.setAttribute('aria-busy', 'false');
  }
}

refresh.addEventListener('click', () => load({ append: false }));
// A server started with --api-key (or --read-api-key) wants a key to list orders.
bindKeyField(byId('api-key'), () => load({ append: false }));
loadMore.addEventListener('click', () => load({ append: true }));
load({ append: false });
