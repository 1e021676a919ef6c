// The pipeline at a glance: GET /stats and GET /subscriptions, refreshed while the page is
// visible; slower after errors; pausable (moving numbers must be stoppable for some readers).

import { NetworkError, bindKeyField, errorMessage, request } from './api.js';
import { byId, h, replaceChildren } from './dom.js';

const REFRESH_MS = 2000;
const MAX_BACKOFF_MS = 30000;

const state = { paused: false, timer: null, failures: 0, running: false };
const numbers = new Intl.NumberFormat();

function count(value) {
  return Number.isFinite(value) ? numbers.format(value) : '—';
}

function age(ms) {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3600000) return `${Math.round(ms / 60000)} min`;
  return `${Math.round(ms / 3600000)} h`;
}

function flag(id, bad, warn = false) {
  const card = byId(id);
  card.classList.toggle('is-bad', bad);
  card.classList.toggle('is-warn', !bad && warn);
}

function renderStats(stats) {
  const queue = stats.queue ?? {};
  const stream = stats.stream ?? {};
  const deliveries = stats.deliveries ?? {};
  byId('queue-depth').textContent = count(queue.visible);
  byId('queue-inflight').textContent = count(queue.inFlight);
  byId('queue-age').textContent = age(queue.oldestAgeMs);
  byId('orders-stored').textContent = count(stats.orders?.stored);
  byId('stream-pending').textContent = count(stream.pending);
  byId('stream-failed').textContent = count(stream.failed);
  byId('deliveries-delivered').textContent = count(deliveries.delivered);
  byId('deliveries-pending').textContent = count(deliveries.pending);
  byId('deliveries-failed').textContent = count(deliveries.failed);
  byId('dlq-depth').textContent = count(queue.deadLetter);
  byId('subscription-count').textContent = count(stats.subscriptions);
  flag('stage-queue', false, (queue.oldestAgeMs ?? 0) > 60000);
  flag('stage-stream', (stream.failed ?? 0) > 0);
  flag('stage-deliveries', (deliveries.failed ?? 0) > 0, (deliveries.pending ?? 0) > 0);
  flag('stage-dlq', (queue.deadLetter ?? 0) > 0);
}

const STATUS_BADGES = { Confirmed: 'badge-ok', PendingConfirmation: 'badge-warn' };

function renderSubscriptions(subscriptions) {
  const rows = subscriptions.map((s) => {
    const d = s.deliveries ?? {};
    return h(
      'tr',
      {},
      h('td', { class: 'endpoint' }, s.endpoint ?? s.subscriptionArn ?? s.id, h('br'), h('span', { class: 'muted' }, s.protocol ?? '')),
      h('td', {}, h('span', { class: `badge ${STATUS_BADGES[s.status] ?? 'badge-muted'}` }, s.status ?? '—')),
      h('td', { class: 'num' }, count(d.delivered)),
      h('td', { class: 'num' }, count(d.pending)),
      h('td', { class: 'num' }, count(d.failed)),
      h('td', { class: 'err' }, s.lastError ?? ''),
    );
  });
  replaceChildren(byId('subs-body'), rows);
  byId('subs-empty').hidden = subscriptions.length > 0;
}

function setLive(kind, text) {
  const dot = byId('live-dot');
  dot.classList.toggle('paused', kind === 'paused');
  dot.classList.toggle('error', kind === 'error');
  byId('live-text').textContent = text;
}

async function refresh() {
  if (state.running) return;
  state.running = true;
  try {
    const [stats, subs] = await Promise.all([request('/stats'), request('/subscriptions')]);
    if (!stats.ok || !stats.data) throw new Error(errorMessage(stats, 'The statistics could not be read'));
    renderStats(stats.data);
    if (subs.ok && Array.isArray(subs.data?.subscriptions)) renderSubscriptions(subs.data.subscriptions);
    state.failures = 0;
    byId('pipeline-error').hidden = true;
    if (!state.paused) setLive('live', `Live · updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    state.failures += 1;
    byId('pipeline-error-text').textContent =
      error instanceof NetworkError ? `${error.message}. Retrying on its own.` : `${error.message}. Retrying on its own.`;
    byId('pipeline-error').hidden = false;
    setLive('error', 'Reconnecting…');
  } finally {
    state.running = false;
    schedule();
  }
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = null;
  if (state.paused || document.hidden) return;
  const delay = Math.min(REFRESH_MS * 2 ** state.failures, MAX_BACKOFF_MS);
  state.timer = setTimeout(refresh, delay);
}

// A server started with --api-key (or --read-api-key) wants a key to read its state.
bindKeyField(byId('api-key'), () => refresh());

const pause = byId('pause');
pause.addEventListener('click', () => {
  state.paused = !state.paused;
  pause.setAttribute('aria-pressed', String(state.paused));
  pause.textContent = state.paused ? 'Resume' : 'Pause';
  if (state.paused) {
    clearTimeout(state.timer);
    setLive('paused', 'Paused');
  } else {
    refresh();
  }
});

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && !state.paused) refresh();
  else clearTimeout(state.timer);
});

refresh();
