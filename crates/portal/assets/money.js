// Exact money for the browser: amounts are decimal text or integer cents (BigInt), never
// binary floats, so 3 × 19.99 is 59.97 and not 59.970000000000006.

const CENTS = /^(\d+)(?:\.(\d{1,2}))?$/;

/** "19.99" → 1999n; "19.9" → 1990n; "19" → 1900n; anything else (or > 2 decimals) → null. */
export function parseCents(text) {
  const m = CENTS.exec(String(text).trim());
  if (!m) return null;
  return BigInt(m[1]) * 100n + BigInt((m[2] ?? '').padEnd(2, '0'));
}

/** 5997n → "59.97". */
export function centsToDecimal(cents) {
  const negative = cents < 0n;
  const abs = negative ? -cents : cents;
  const text = `${abs / 100n}.${String(abs % 100n).padStart(2, '0')}`;
  return negative ? `-${text}` : text;
}

/**
 * What the user typed as a price, as JSON number text: "19,99" → "19.99", "007.5" → "7.5".
 * Returns null when it is not a number at all. Precision and range are the API's to judge
 * (it names the field when a price has more than two decimals or is negative).
 */
export function decimalText(input) {
  let text = String(input).trim().replace(/\s/g, '');
  if (/^-?\d+,\d+$/.test(text)) text = text.replace(',', '.');
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
  if (!m) return null;
  const integer = m[2].replace(/^0+(?=\d)/, '');
  return `${m[1]}${integer}${m[3] !== undefined ? `.${m[3]}` : ''}`;
}

/** What the user typed as a quantity, as JSON integer text, or null. */
export function integerText(input) {
  const m = /^(-?)(\d+)$/.exec(String(input).trim());
  if (!m) return null;
  return `${m[1]}${m[2].replace(/^0+(?=\d)/, '')}`;
}

const formats = new Map();

/**
 * Formats decimal text as money in the reader's locale: formatMoney("59.97", "EUR") → "€59.97".
 * Intl formats a decimal *string* exactly; two fraction digits always, so no currency's
 * rounding rule hides a cent the order really has.
 */
export function formatMoney(decimal, currency) {
  const text = String(decimal);
  try {
    let format = formats.get(currency);
    if (!format) {
      format = new Intl.NumberFormat(undefined, {
        style: 'currency',
        currency,
        minimumFractionDigits: 2,
        maximumFractionDigits: 2,
      });
      formats.set(currency, format);
    }
    return format.format(text);
  } catch {
    return `${text} ${currency}`;
  }
}
