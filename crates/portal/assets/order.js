// The order form: builds an order that follows schema/order.schema.json, submits it once,
// and follows it until it is stored.

import { JsonNumber, NetworkError, apiBase, bindKeyField, errorMessage, request, toJson } from './api.js';
import { byId, formatTime, h, linkToApi, replaceChildren } from './dom.js';
import { centsToDecimal, decimalText, formatMoney, integerText, parseCents } from './money.js';

const MAX_ITEMS = 100;
// Status polling: quick at first (the local pipeline stores within milliseconds), then
// backing off; about a minute in all before the page stops asking on its own.
const POLL_DELAYS_MS = [200, 300, 500, 800, 1200, 2000, 3000, 5000, 8000, 8000, 10000, 10000, 12000];

const form = byId('order-form');
const itemsList = byId('items');
const itemTemplate = byId('item-template');
const addItemButton = byId('add-item');
const submitButton = byId('submit-order');
const shipToggle = byId('ship-toggle');
const shipping = byId('shipping');
const notes = byId('notes');
const orderError = byId('order-error');
const apiKeyInput = byId('api-key');

// A server started with --api-key wants it on every order; kept for this tab only.
bindKeyField(apiKeyInput);

const state = {
  orderId: newOrderId(),
  inFlight: false,
  // Bumped whenever the page stops following an order, so stale polls end quietly.
  followGeneration: 0,
};

/** A fresh client-chosen orderID; retries of the same order reuse it. */
function newOrderId() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  // Plain-http pages that are not on localhost are no secure context and lack randomUUID.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ---- item rows -------------------------------------------------------------------------

function rows() {
  return Array.from(itemsList.querySelectorAll(':scope > .item-row'));
}

function addItem({ focus = false } = {}) {
  if (rows().length >= MAX_ITEMS) return;
  const row = itemTemplate.content.firstElementChild.cloneNode(true);
  row.querySelector('.remove-item').addEventListener('click', () => removeItem(row));
  itemsList.appendChild(row);
  renumber();
  recalculate();
  if (focus) row.querySelector('input[name="sku"]').focus();
}

function removeItem(row) {
  const all = rows();
  if (all.length <= 1) return;
  const index = all.indexOf(row);
  row.remove();
  renumber();
  recalculate();
  const remaining = rows();
  const next = remaining[Math.min(index, remaining.length - 1)];
  (next ? next.querySelector('input[name="sku"]') : addItemButton).focus();
}

/** Gives every row's fields ids, labels and schema paths (items[0].sku) for its position. */
function renumber() {
  const all = rows();
  all.forEach((row, i) => {
    row.querySelector('.item-no').textContent = String(i + 1);
    for (const name of ['sku', 'quantity', 'unitPrice']) {
      const input = row.querySelector(`[name="${name}"]`);
      const field = input.closest('.field');
      const error = field.querySelector('.field-error');
      const id = `items-${i}-${name}`;
      input.id = id;
      input.dataset.field = `items[${i}].${name}`;
      input.setAttribute('aria-describedby', `${id}-error`);
      field.querySelector('label').htmlFor = id;
      field.dataset.fieldWrap = input.dataset.field;
      error.id = `${id}-error`;
      error.dataset.errorFor = input.dataset.field;
    }
    for (const label of row.querySelectorAll('.item-label')) label.textContent = `Item ${i + 1} `;
    row.querySelector('.item-label-suffix').textContent = ` item ${i + 1}`;
    row.querySelector('.remove-item').disabled = all.length <= 1;
  });
  addItemButton.disabled = all.length >= MAX_ITEMS;
  byId('item-count').textContent = String(all.length);
}

// ---- totals ----------------------------------------------------------------------------

function currency() {
  return byId('currency').value;
}

/** Line totals and the order total in integer cents; incomplete rows are left out and said so. */
function recalculate() {
  let total = 0n;
  let incomplete = 0;
  for (const row of rows()) {
    const quantity = integerText(row.querySelector('[name="quantity"]').value);
    const price = decimalText(row.querySelector('[name="unitPrice"]').value);
    const cents = price === null ? null : parseCents(price);
    const out = row.querySelector('.line-total');
    const qty = quantity === null ? null : BigInt(quantity);
    if (qty === null || cents === null || qty < 1n) {
      out.textContent = '—';
      incomplete += 1;
      continue;
    }
    const line = qty * cents;
    total += line;
    out.textContent = formatMoney(centsToDecimal(line), currency());
  }
  byId('order-total').textContent = formatMoney(centsToDecimal(total), currency());
  const note = byId('total-note');
  note.hidden = incomplete === 0;
  note.textContent =
    incomplete === 1 ? '1 item has no valid quantity or price yet.' : `${incomplete} items have no valid quantity or price yet.`;
}

// ---- errors ----------------------------------------------------------------------------

function fieldElements() {
  return Array.from(form.querySelectorAll('[data-field]'));
}

/** The fields that fail the browser's own checks (type, required, min/max), as details. */
function browserProblems() {
  return fieldElements()
    .filter((el) => typeof el.checkValidity === 'function' && !el.checkValidity())
    .map((el) => ({ field: el.dataset.field, message: el.validationMessage }));
}

function clearErrors() {
  orderError.hidden = true;
  replaceChildren(byId('order-error-list'));
  for (const el of fieldElements()) clearFieldError(el);
}

function clearFieldError(input) {
  input.removeAttribute('aria-invalid');
  const error = errorFor(input.dataset.field);
  if (error) {
    error.hidden = true;
    error.textContent = '';
  }
}

function errorFor(field) {
  return Array.from(form.querySelectorAll('[data-error-for]')).find((el) => el.dataset.errorFor === field);
}

function labelText(input) {
  const label = input.labels && input.labels[0];
  return label ? label.textContent.replace(/\s+/g, ' ').replace(/optional$/, '').trim() : input.name;
}

/**
 * Shows a summary at the top (in data-testid="order-error", focused, with links to the
 * fields) and, for each detail whose field is on the form, the message next to that field.
 */
function showErrors(title, text, details = []) {
  const list = byId('order-error-list');
  replaceChildren(list);
  const inputs = fieldElements();
  for (const { field, message } of details) {
    const input = inputs.find((el) => el.dataset.field === field);
    if (input) {
      if (field.startsWith('shippingAddress.')) showShipping();
      input.setAttribute('aria-invalid', 'true');
      const error = errorFor(field);
      if (error) {
        error.textContent = message;
        error.hidden = false;
      }
      const link = h('a', { href: `#${input.id}` }, labelText(input));
      link.addEventListener('click', (event) => {
        event.preventDefault();
        input.focus();
      });
      list.appendChild(h('li', {}, link, `: ${message}`));
    } else {
      list.appendChild(h('li', {}, field && field !== '$' ? `${field}: ${message}` : message));
    }
  }
  byId('order-error-title').textContent = title;
  byId('order-error-text').textContent = text;
  byId('order-error-text').hidden = !text;
  orderError.hidden = false;
  orderError.scrollIntoView({ block: 'start' });
  orderError.focus({ preventScroll: true });
}

function showShipping() {
  shipToggle.checked = true;
  shipping.hidden = false;
}

// ---- building the order ----------------------------------------------------------------

/** The order as the schema names it, plus the problems that stop it being sent at all. */
function collect() {
  const problems = [];
  const value = (id) => byId(id).value.trim();
  const items = rows().map((row, i) => {
    const sku = row.querySelector('[name="sku"]').value.trim();
    const quantityInput = row.querySelector('[name="quantity"]');
    const priceInput = row.querySelector('[name="unitPrice"]');
    const quantity = integerText(quantityInput.value);
    const unitPrice = decimalText(priceInput.value);
    if (quantity === null) {
      problems.push({ field: `items[${i}].quantity`, message: 'Enter a whole number, like 2.' });
    }
    if (unitPrice === null) {
      problems.push({ field: `items[${i}].unitPrice`, message: 'Enter a price, like 19.99.' });
    }
    return {
      sku,
      quantity: quantity === null ? undefined : new JsonNumber(quantity),
      unitPrice: unitPrice === null ? undefined : new JsonNumber(unitPrice),
    };
  });
  const email = value('customerEmail');
  const note = notes.value;
  const order = {
    orderID: state.orderId,
    customerId: value('customerId'),
    customerEmail: email === '' ? undefined : email,
    items,
    currency: currency(),
    shippingAddress: shipToggle.checked
      ? {
          line1: value('ship-line1'),
          city: value('ship-city'),
          postalCode: value('ship-postal'),
          country: value('ship-country').toUpperCase(),
        }
      : undefined,
    notes: note.trim() === '' ? undefined : note,
  };
  return { order, problems };
}

// ---- submitting ------------------------------------------------------------------------

function setBusy(busy) {
  state.inFlight = busy;
  submitButton.disabled = busy;
  submitButton.setAttribute('aria-busy', String(busy));
  submitButton.textContent = busy ? 'Placing order…' : 'Place order';
  form.setAttribute('aria-busy', String(busy));
}

async function submit(event) {
  event.preventDefault();
  if (state.inFlight) return;
  clearErrors();
  const { order, problems } = collect();
  if (problems.length > 0) {
    showErrors('Some fields need attention', 'The order was not sent.', problems);
    return;
  }
  setBusy(true);
  try {
    const response = await request('/orders', { method: 'POST', body: toJson(order) });
    if (response.status === 202 || response.status === 200) {
      showReceipt(order, response.data);
      return;
    }
    const details = Array.isArray(response.data?.details) ? response.data.details : [];
    const fields = new Set(fieldElements().map((el) => el.dataset.field));
    if (response.status === 400 && details.some((d) => fields.has(d.field))) {
      const n = details.length;
      showErrors(
        n === 1 ? '1 field needs attention' : `${n} fields need attention`,
        'The order was not accepted. Correct the fields below and place it again.',
        details,
      );
    } else if (response.status === 400) {
      // API Gateway's validator (the AWS deployment) does not say which field broke the
      // schema: mark the fields the browser itself finds wrong, and say so plainly.
      const local = browserProblems();
      const n = local.length;
      showErrors(
        n === 0 ? 'The order was not accepted' : n === 1 ? '1 field needs attention' : `${n} fields need attention`,
        `${errorMessage(response, 'The server refused the order')}. ` +
          (n === 0
            ? 'Check every field (lengths, the e-mail address, the country code) and place it again.'
            : 'The fields marked below look wrong; correct them and place the order again.'),
        local,
      );
    } else if (response.status === 503 || response.status === 429) {
      showErrors(
        'The order service is busy',
        `${errorMessage(response, 'It could not take the order right now')}. Nothing was placed; your details are still here. Try again in a moment.`,
      );
    } else {
      showErrors('The order was not accepted', `${errorMessage(response, 'The server refused the order')}.`);
    }
  } catch (error) {
    if (!(error instanceof NetworkError)) throw error;
    showErrors(
      error.kind === 'timeout' ? 'The server did not answer in time' : 'Could not reach the order service',
      'Your order is not confirmed. Everything you typed is still here: check your connection and press “Place order” again. ' +
        'Trying again is safe, it cannot create a second order.',
    );
  } finally {
    setBusy(false);
  }
}

// ---- after submitting: the receipt and the order's progress ----------------------------

function showReceipt(order, accepted) {
  const id = typeof accepted?.orderID === 'string' ? accepted.orderID : order.orderID;
  byId('receipt-message').textContent =
    typeof accepted?.message === 'string' && accepted.message ? accepted.message : `Order ${id} received`;
  byId('receipt-id').textContent = id;
  setStatus('ACCEPTED', 'badge-pending', 'Queued; waiting for it to be stored…');
  setStep('active', 'Waiting for the order to be stored…');
  byId('stored-facts').hidden = true;
  byId('check-again').hidden = true;
  byId('order-view').hidden = true;
  byId('receipt').hidden = false;
  document.title = 'Order received · orderflow';
  window.scrollTo({ top: 0 });
  byId('receipt-title').focus();
  follow(id);
}

function setStatus(status, badgeClass, detail) {
  const badge = byId('order-status');
  badge.textContent = status;
  badge.className = `badge ${badgeClass}`;
  byId('status-detail').textContent = detail;
}

function setStep(stepState, note) {
  const step = byId('step-stored');
  step.className = `step ${stepState}`;
  byId('stored-note').textContent = note;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Asks GET /orders/{id} with backoff until the order is stored, or stops after a while. */
async function follow(id) {
  const generation = ++state.followGeneration;
  byId('check-again').hidden = true;
  for (const delay of POLL_DELAYS_MS) {
    await sleep(delay);
    if (generation !== state.followGeneration) return;
    try {
      const response = await request(`/orders/${encodeURIComponent(id)}`, { timeoutMs: 10000 });
      if (generation !== state.followGeneration) return;
      if (response.ok && response.data) {
        showStored(response.data);
        return;
      }
      if (response.status === 404) {
        setStatus('ACCEPTED', 'badge-pending', 'Queued; waiting for it to be stored…');
      } else {
        setStatus('ACCEPTED', 'badge-pending', `${errorMessage(response, 'The status could not be read')}; asking again…`);
      }
    } catch (error) {
      if (!(error instanceof NetworkError)) throw error;
      if (generation !== state.followGeneration) return;
      setStatus('ACCEPTED', 'badge-pending', 'Lost the connection while checking; asking again…');
    }
  }
  if (generation !== state.followGeneration) return;
  setStatus('ACCEPTED', 'badge-warn', 'Not stored yet. The order is safely queued and will be stored; check again in a moment.');
  setStep('stalled', 'Still queued.');
  byId('check-again').hidden = false;
}

function showStored(stored) {
  const status = typeof stored.status === 'string' ? stored.status : 'STORED';
  setStatus(status, 'badge-ok', 'The order is stored; its subscribers are notified from here.');
  setStep('done', 'Stored in the orders table.');
  const items = Array.isArray(stored.items) ? stored.items : [];
  const units = items.reduce((sum, item) => sum + (Number.isInteger(item.quantity) ? item.quantity : 0), 0);
  byId('stored-total').textContent = stored.total !== undefined ? formatMoney(stored.total, stored.currency) : '—';
  byId('stored-items').textContent = `${items.length} ${items.length === 1 ? 'line' : 'lines'}, ${units} ${units === 1 ? 'unit' : 'units'}`;
  byId('stored-at').textContent = stored.storedAt ? formatTime(stored.storedAt) : '—';
  byId('stored-facts').hidden = false;
}

/** Back to the form for the next order: same customer, fresh items and a new orderID. */
function newOrder() {
  state.followGeneration += 1;
  state.orderId = newOrderId();
  byId('order-id').textContent = state.orderId;
  clearErrors();
  replaceChildren(itemsList);
  addItem();
  for (const id of ['ship-line1', 'ship-city', 'ship-postal', 'ship-country']) byId(id).value = '';
  shipToggle.checked = false;
  shipping.hidden = true;
  notes.value = '';
  updateNotesCount();
  byId('receipt').hidden = true;
  byId('order-view').hidden = false;
  document.title = 'Place an order · orderflow';
  window.scrollTo({ top: 0 });
  byId('customerId').focus();
}

function updateNotesCount() {
  byId('notes-count').textContent = `${notes.value.length} of 1000 characters`;
}

// ---- wiring ----------------------------------------------------------------------------

form.addEventListener('submit', submit);
form.addEventListener('input', (event) => {
  const target = event.target;
  if (target.dataset?.field && target.getAttribute('aria-invalid') === 'true') clearFieldError(target);
  recalculate();
});
byId('currency').addEventListener('change', recalculate);
addItemButton.addEventListener('click', () => addItem({ focus: true }));
shipToggle.addEventListener('change', () => {
  shipping.hidden = !shipToggle.checked;
  if (shipToggle.checked) byId('ship-line1').focus();
});
notes.addEventListener('input', updateNotesCount);
byId('new-order').addEventListener('click', newOrder);
byId('check-again').addEventListener('click', () => {
  setStatus('ACCEPTED', 'badge-pending', 'Checking…');
  setStep('active', 'Waiting for the order to be stored…');
  follow(byId('receipt-id').textContent);
});

byId('order-id').textContent = state.orderId;
addItem();
linkToApi(byId('schema-link'), '/schema/order.json', apiBase);
