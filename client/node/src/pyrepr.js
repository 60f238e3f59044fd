'use strict';
// The few Python spellings the graph digest depends on (graphexec/digest.py hashes Python's JSON of a
// node), reproduced exactly: repr(float), and json.dumps(..., separators=(",", ":"), ensure_ascii=True).

/** Python's repr(float): shortest round-trip digits, exponent form below 1e-4 and from 1e16 on. */
function floatRepr(x) {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mantissa, exponentText] = Math.abs(x).toExponential().split('e'); // shortest digits, as Python
  const digits = mantissa.replace('.', '');
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 16) {
    const fraction = digits.length > 1 ? `.${digits.slice(1)}` : '';
    const expSign = exponent < 0 ? '-' : '+';
    return `${sign}${digits[0]}${fraction}e${expSign}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
  const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, '0');
  const fraction = digits.slice(exponent + 1) || '0';
  return `${sign}${whole}.${fraction}`;
}

/** A JSON fragment emitted verbatim (integers kept as exact decimal text, int64 included). */
class RawJson {
  constructor(text) {
    this.text = text;
  }
}

/** Python's json.dumps(value, separators=(",", ":"), ensure_ascii=True) (which escapes everything outside " " to "~") for null/bool/str/list/RawJson. */
function pythonJson(value) {
  if (value instanceof RawJson) return value.text;
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(',')}]`;
  if (value === null || typeof value === 'boolean') return String(value);
  if (typeof value === 'string') {
    return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
  throw new TypeError(`no canonical JSON for ${typeof value}`);
}

module.exports = { floatRepr, pythonJson, RawJson };
