// Talks to the orderflow API: the base URL comes from portal-config.json (empty means this
// origin), every request has a timeout, and money in responses is kept as exact decimal text.

const DEFAULT_TIMEOUT_MS = 15000;
const MONEY_KEYS = new Set(['unitPrice', 'total']);

let base;

const API_KEY_STORAGE = 'orderflow.apiKey';

/** The API key the user entered for this tab ('' if none); kept in sessionStorage only. */
export function apiKey() {
  try {
    return sessionStorage.getItem(API_KEY_STORAGE) ?? '';
  } catch {
    return '';
  }
}

/** Remembers (or, when empty, forgets) the API key for this tab. */
export function setApiKey(key) {
  try {
    if (key) sessionStorage.setItem(API_KEY_STORAGE, key);
    else sessionStorage.removeItem(API_KEY_STORAGE);
  } catch {
    // Storage disabled: the key is simply not kept.
  }
}

/**
 * Ties a password field to the tab's API key: it shows the key already entered on another
 * page, and `onChange` runs after the user enters a new one (to load again with it).
 */
export function bindKeyField(input, onChange = () => {}) {
  input.value = apiKey();
  input.addEventListener('change', () => {
    setApiKey(input.value.trim());
    onChange();
  });
}

/** The API base URL without a trailing slash; '' for the origin that served the page. */
export function apiBase() {
  base ??= loadBase();
  return base;
}

async function loadBase() {
  try {
    const response = await fetch('portal-config.json', { cache: 'no-cache', headers: { accept: 'application/json' } });
    if (response.ok) {
      const config = await response.json();
      if (typeof config.apiBase === 'string') return config.apiBase.replace(/\/+$/, '');
    }
  } catch {
    // No config (a static copy of the pages, say): talk to this origin.
  }
  return '';
}

/** Thrown when no HTTP answer arrived: `kind` is 'network' or 'timeout'. */
export class NetworkError extends Error {
  constructor(kind, cause) {
    super(kind === 'timeout' ? 'The server did not answer in time' : 'The server could not be reached', { cause });
    this.name = 'NetworkError';
    this.kind = kind;
  }
}

/**
 * Sends one request. Resolves with {status, ok, data, headers} for every HTTP answer
 * (4xx and 5xx included); rejects with NetworkError when there was none.
 */
export async function request(path, { method = 'GET', body, timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  const url = (await apiBase()) + path;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const key = apiKey();
  if (key) headers['x-api-key'] = key;
  try {
    const response = await fetch(url, { method, body, headers, signal: controller.signal, cache: 'no-store' });
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = parseJsonExact(text);
      } catch {
        data = null;
      }
    }
    return { status: response.status, ok: response.ok, data, headers: response.headers };
  } catch (error) {
    throw new NetworkError(controller.signal.aborted ? 'timeout' : 'network', error);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * JSON.parse, except that money fields keep their decimal text ("59.97") instead of
 * becoming binary floats. Uses the reviver's source text where the browser offers it.
 */
export function parseJsonExact(text) {
  return JSON.parse(text, function revive(key, value, context) {
    if (typeof value === 'number' && MONEY_KEYS.has(key)) {
      return context && typeof context.source === 'string' ? context.source : String(value);
    }
    return value;
  });
}

/** A number written into JSON as the given text, exactly. */
export class JsonNumber {
  constructor(text) {
    this.text = text;
  }
}

/** JSON.stringify that writes JsonNumber values verbatim and leaves out undefined fields. */
export function toJson(value) {
  if (value instanceof JsonNumber) return value.text;
  if (Array.isArray(value)) return `[${value.map(toJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const fields = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`);
    return `{${fields.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The API's error message, or a fallback naming the HTTP status. */
export function errorMessage(response, fallback) {
  const error = response?.data?.error;
  return typeof error === 'string' && error ? error : `${fallback} (HTTP ${response?.status ?? '?'})`;
}
