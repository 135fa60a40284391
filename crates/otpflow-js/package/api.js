// otpflow's JavaScript API over the narrow wasm module (the crate's
// `narrow` feature): the classes, argument checks, error objects and the
// verifier's load → step → compare-and-swap → retry loop over the caller's
// store live here, in plain JavaScript; every decision about a validation
// (codes, budgets, lockouts, which refusal wins) is a call into the module,
// which answers in the little byte format `Reader` reads (see
// src/narrow.rs). `bind(wasm)` gives the API over an initialized module:
// node.js and web.js load it.

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const EMPTY = new Uint8Array(0);

/** The longest phone input the core reads (UTF-8 bytes). */
const MAX_PHONE_INPUT = 64;
/** The longest typed code the core reads. */
const MAX_CODE_INPUT = 64;
/** The longest purpose label. */
const MAX_LABEL = 32;
/** The most fields a context, or labels a budget list, may have. */
const MAX_ITEMS = 32;
/** The longest context field name or value, in UTF-16 units. */
const MAX_FIELD = 1024;
/** The largest stored record read (a record is about 130 bytes). */
const MAX_RECORD_BYTES = 16 * 1024;
const DEFAULT_MAX_RETRIES = 8;
const MAX_RETRIES = 100;

const CHANNELS = ["sms", "whatsapp", "voice", "none"];
const KINDS = ["address", "range", "country", "global", "label"];
const OP = { start: 0, resend: 1, verify: 2, cancel: 3, status: 4 };

/** Reads the module's answers (little-endian). */
class Reader {
  constructor(bytes) {
    this.b = bytes;
    this.v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.i = 0;
  }
  u8() {
    return this.b[this.i++];
  }
  u16() {
    const x = this.v.getUint16(this.i, true);
    this.i += 2;
    return x;
  }
  u32() {
    const x = this.v.getUint32(this.i, true);
    this.i += 4;
    return x;
  }
  f64() {
    const x = this.v.getFloat64(this.i, true);
    this.i += 8;
    return x;
  }
  /** A number, or null for NaN (none). */
  opt() {
    const x = this.f64();
    return Number.isNaN(x) ? null : x;
  }
  date() {
    return new Date(this.f64());
  }
  optDate() {
    const x = this.opt();
    return x === null ? null : new Date(x);
  }
  s() {
    const n = this.u8();
    const x = decoder.decode(this.b.subarray(this.i, this.i + n));
    this.i += n;
    return x;
  }
  bytes() {
    const n = this.u32();
    const x = this.b.slice(this.i, this.i + n);
    this.i += n;
    return x;
  }
}

/** Writes the module's inputs (little-endian). */
class Writer {
  constructor() {
    this.parts = [];
  }
  u8(x) {
    this.parts.push(x & 0xff);
    return this;
  }
  u16(x) {
    return this.u8(x).u8(x >> 8);
  }
  f64(x) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, x, true);
    return this.raw(b);
  }
  s(text) {
    const b = encoder.encode(text);
    return this.u16(b.length).raw(b);
  }
  raw(bytes) {
    // A loop, not a spread: a spread of a long array overflows the stack.
    for (const b of bytes) this.parts.push(b);
    return this;
  }
  done() {
    return Uint8Array.from(this.parts);
  }
}

// ---------------------------------------------------------------- errors

const PUBLIC_MESSAGES = {
  invalid_request: "invalid request",
  malformed_code: "the code is not a code of the expected length",
  invalid_code: "invalid code",
  blocked: "too many failed attempts; contact support",
  unavailable: "service unavailable; try again",
};

/** Rust's `{:?}` of a char, for the common cases. */
function debugChar(ch) {
  const escapes = { "'": "\\'", "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0" };
  return `'${escapes[ch] ?? ch}'`;
}

/** The core's message for a phone error. */
function phoneMessage(code, f) {
  switch (code) {
    case "phone_empty":
      return "the phone number is empty";
    case "phone_too_long":
      return `the phone number is longer than ${f.max} bytes`;
    case "phone_invalid_character":
      return `character ${debugChar(f.character)} at position ${f.position} has no place in a phone number`;
    case "phone_misplaced_plus":
      return `the '+' at position ${f.position} is not at the start of the number`;
    case "phone_missing_field": {
      const parts = [];
      if (f.missing.includes("national")) parts.push("missing phone number");
      if (f.missing.includes("countryCode")) parts.push("missing country code");
      return parts.length ? parts.join("; ") : "missing part of the phone number";
    }
    case "phone_missing_country_code":
      return "the phone number needs its country code (+…)";
    case "phone_invalid_country_code":
      return "the country code must be '+' and one to three digits";
    case "phone_unknown_country_code":
      return "the country code is not assigned";
    case "phone_invalid":
      return "not a valid phone number";
    case "phone_not_mobile":
      return "the phone number cannot receive SMS";
    case "phone_country_not_allowed":
      return `phone numbers of +${f.countryCode} are not accepted`;
    case "phone_unknown_region":
      return "unknown region";
    case "phone_region_not_allowed":
      return "phone numbers of this region are not accepted";
    case "phone_non_geographic":
      return `non-geographic numbers (+${f[NON_GEOGRAPHIC]}) are not accepted`;
    default:
      return "invalid phone number";
  }
}

/** The core's message for one of its errors (no code, key or number in it). */
function coreMessage(code, retryAfter, f) {
  if (code.startsWith("phone_")) return `invalid phone number: ${phoneMessage(code, f)}`;
  switch (code) {
    case "invalid_purpose":
      return "invalid purpose: a purpose label is 1 to 32 bytes of a-z, 0-9, '-', '_' and '.'";
    case "malformed_code":
      return "the code is not a code of the expected length";
    case "validation_not_found":
      return "no validation found";
    case "code_mismatch":
      return `the code does not match; ${f.attemptsLeft} attempts left`;
    case "validation_expired":
      return "the validation has expired";
    case "validation_canceled":
      return "the validation was canceled";
    case "already_validated":
      return "the validation already succeeded";
    case "max_attempts_reached":
      return "too many attempts on this code";
    case "subject_locked":
      return `too many failed attempts; start again in ${retryAfter}s`;
    case "subject_blocked":
      return "too many failed attempts; the number must be unlocked";
    case "resend_too_soon":
      return `resend too soon; retry in ${retryAfter}s`;
    case "send_limit_reached":
      return `send limit reached; retry in ${retryAfter}s`;
    case "resend_limit_reached":
      return `no more resends for this code; start again in ${retryAfter}s`;
    case "budget_exhausted":
      return `the ${f.budget} budget is spent; retry in ${retryAfter}s`;
    case "destination_denied":
      return "sends to this number's range are denied";
    case "contention":
      return "too many concurrent changes; try again";
    default:
      return "the store failed";
  }
}

function publicMessage(code, retryAfter, f) {
  if (code.startsWith("phone_")) return `invalid phone number: ${phoneMessage(code, f)}`;
  if (code === "too_many_requests") return `too many requests; retry in ${retryAfter}s`;
  return PUBLIC_MESSAGES[code] ?? PUBLIC_MESSAGES.unavailable;
}

/**
 * Every refusal of the package: an `Error` named `OtpflowError` with
 * `code`, `httpStatus`, `retryAfter` (seconds, or null) and `public`, the
 * enumeration-safe answer for someone who may not hold the number.
 */
export class OtpflowError extends Error {
  constructor(message, own, pub, extra = {}, phone = {}) {
    super(message);
    Object.defineProperty(this, "name", { value: "OtpflowError", writable: true, configurable: true });
    this.code = own.code;
    this.httpStatus = own.httpStatus;
    this.retryAfter = own.retryAfter;
    Object.assign(this, phone, extra);
    this.public = { code: pub.code, httpStatus: pub.httpStatus, retryAfter: pub.retryAfter, ...phone, message: pub.message };
  }
}

const UNAVAILABLE = { code: "unavailable", httpStatus: 503, retryAfter: null, message: PUBLIC_MESSAGES.unavailable };
const INVALID_REQUEST = { code: "invalid_request", httpStatus: 400, retryAfter: null, message: PUBLIC_MESSAGES.invalid_request };

/** This package's own refusals. */
function ownError(code, httpStatus, message, pub, extra) {
  return new OtpflowError(message, { code, httpStatus, retryAfter: null }, pub, extra);
}

function argumentError(argument, expected) {
  return ownError("invalid_argument", 400, `\`${argument}\` must be ${expected}`, INVALID_REQUEST, { argument });
}

const clockError = () =>
  ownError(
    "invalid_clock",
    500,
    "the clock must give milliseconds since the Unix epoch (a finite number or a valid Date, years 1 to 9999)",
    UNAVAILABLE,
  );

const randomError = () =>
  ownError("randomness_unavailable", 503, "crypto.getRandomValues is not available or failed", UNAVAILABLE);

function storeError(message, cause) {
  const extra = cause === undefined ? {} : { cause };
  return ownError("store_unavailable", 503, `the store failed: ${message}`, UNAVAILABLE, extra);
}

function policyError(setting, codeLength) {
  const camel = setting.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
  const message =
    setting === "code_length" && codeLength !== undefined
      ? `code length ${codeLength} is not between 4 and 10 digits`
      : `policy setting \`${setting}\` is out of range`;
  return ownError("invalid_policy", 500, message, UNAVAILABLE, { setting: camel });
}

function keyError(kind, id, length) {
  const messages = {
    1: `a secret key needs 32 to 64 bytes, not ${length}`,
    2: `the key ring already holds key#${id}`,
    3: `key#${id} is the current key and cannot be removed`,
    4: `the key ring holds no key#${id}`,
  };
  return ownError("invalid_key", 500, messages[kind], UNAVAILABLE);
}

/** The phone fields of an error (about the caller's own input). */
function readPhoneFields(r) {
  switch (r.u8()) {
    case 1:
      return { max: r.u32() };
    case 2:
      return { character: String.fromCodePoint(r.u32()), position: r.u32() };
    case 3:
      return { position: r.u32() };
    case 4: {
      const flags = r.u8();
      const missing = [];
      if (flags & 1) missing.push("countryCode");
      if (flags & 2) missing.push("national");
      return { missing };
    }
    case 5:
      return { countryCode: r.u16() };
    case 6:
      // Named in the message only.
      return { [NON_GEOGRAPHIC]: r.u16() };
    default:
      return {};
  }
}

/** The calling code a `phone_non_geographic` message names. */
const NON_GEOGRAPHIC = Symbol("nonGeographic");

/** One of the core's errors, as the module wrote it. */
function readError(r) {
  const own = { code: r.s(), httpStatus: r.u16(), retryAfter: r.opt() };
  const pub = { code: r.s(), httpStatus: r.u16(), retryAfter: r.opt() };
  let extra = {};
  let phone = {};
  switch (r.u8()) {
    case 1:
      extra = { attemptsLeft: r.u32() };
      break;
    case 2:
      extra = { budget: r.s() };
      break;
    case 3:
      phone = readPhoneFields(r);
      break;
  }
  pub.message = publicMessage(pub.code, pub.retryAfter, phone);
  const message = coreMessage(own.code, own.retryAfter, { ...extra, ...phone });
  delete phone[NON_GEOGRAPHIC];
  return new OtpflowError(message, own, pub, extra, phone);
}

/** A refusal of the module's own (`[2, code]`): always a bug or a broken store. */
function readOwn(r) {
  const code = r.s();
  switch (code) {
    case "invalid_clock":
      return clockError();
    case "randomness_unavailable":
      return randomError();
    case "store_unavailable":
      return storeError("load gave a record that does not decode");
    default:
      return argumentError("arguments", "valid");
  }
}

// ---------------------------------------------------------------- checks

/** `value` as a string of at most `max` UTF-16 units, `null` when longer. */
function shortString(value, argument, max) {
  if (typeof value !== "string") throw argumentError(argument, "a string");
  return value.length > max ? null : value;
}

/** A non-negative whole number up to 2³²−1, or undefined. */
function whole(n) {
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 0xffffffff ? n : undefined;
}

/** UTF-8 byte order, as the core compares names. */
function compareUtf8(a, b) {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

/** A context object as bytes (empty for none). */
function encodeContext(value) {
  if (value === undefined || value === null) return EMPTY;
  const bad = () => argumentError("context", "an object of up to 32 string fields");
  if (typeof value !== "object" || Array.isArray(value)) throw bad();
  const entries = Object.entries(value);
  if (entries.length > MAX_ITEMS) throw bad();
  const fields = entries.map(([name, v]) => {
    const n = shortString(name, "context", MAX_FIELD);
    const s = shortString(v, "context", MAX_FIELD);
    if (n === null || s === null) throw bad();
    return [n, s];
  });
  fields.sort((a, b) => compareUtf8(a[0], b[0]));
  const w = new Writer().u8(fields.length);
  for (const [name, v] of fields) w.s(name).s(v);
  return w.done();
}

/** An IPv4 address's 4 bytes, as Rust's `Ipv4Addr` parses it, or null. */
function ipv4(text) {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = [];
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p) || (p.length > 1 && p[0] === "0")) return null;
    const n = Number(p);
    if (n > 255) return null;
    bytes.push(n);
  }
  return bytes;
}

/** An IPv6 address's 16 bytes, as Rust's `Ipv6Addr` parses it, or null. */
function ipv6(text) {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (half, allowV4) => {
    if (half === "") return [];
    const out = [];
    const pieces = half.split(":");
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i];
      if (allowV4 && i === pieces.length - 1 && p.includes(".")) {
        const v4 = ipv4(p);
        if (!v4) return null;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
        out.push(parseInt(p, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  let all;
  if (halves.length === 1) {
    all = groups(halves[0], true);
    if (!all || all.length !== 8) return null;
  } else {
    const head = groups(halves[0], false);
    const tail = groups(halves[1], true);
    if (!head || !tail || head.length + tail.length > 7) return null;
    all = [...head, ...new Array(8 - head.length - tail.length).fill(0), ...tail];
  }
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

/** The budgets a send names, as bytes (empty for none). */
function encodeBudgets(value) {
  if (value === undefined || value === null) return EMPTY;
  if (typeof value !== "object") throw argumentError("budgets", "an object");
  const field = (name) => {
    const v = value[name];
    return v === undefined || v === null ? undefined : v;
  };
  let address = [];
  const a = field("address");
  if (a !== undefined) {
    const parsed = typeof a === "string" && a.length <= 64 ? (ipv4(a) ?? ipv6(a)) : null;
    if (!parsed) throw argumentError("budgets.address", "an IPv4 or IPv6 address");
    address = parsed;
  }
  let flags = 0;
  for (const [name, bit] of [
    ["range", 1],
    ["country", 2],
    ["global", 4],
  ]) {
    const v = field(name);
    if (v === undefined || v === false) continue;
    if (v !== true) throw argumentError("budgets", "an object of booleans");
    flags |= bit;
  }
  const w = new Writer().u8(flags).u8(address.length).raw(address);
  const labels = field("labels");
  const bad = () => argumentError("budgets.labels", "an array of up to 32 labels of a-z0-9-_.");
  if (labels === undefined) return w.u8(0).done();
  if (!Array.isArray(labels) || labels.length > MAX_ITEMS) throw bad();
  w.u8(labels.length);
  for (const label of labels) {
    // The module checks the label itself (a refusal is this argument's).
    if (typeof label !== "string" || label.length > 64) throw bad();
    w.s(label);
  }
  return w.done();
}

function channelIndex(value, argument = "channel") {
  if (value === undefined || value === null) return 255;
  const i = CHANNELS.indexOf(value);
  if (i < 0) throw argumentError(argument, '"sms", "whatsapp", "voice" or "none"');
  return i;
}

/** An instant from what a clock gave: ms since the epoch or a Date. */
function instantMs(value) {
  const ms = value instanceof Date ? value.getTime() : value;
  if (typeof ms !== "number" || !Number.isFinite(ms)) throw clockError();
  const year = new Date(ms).getUTCFullYear();
  if (!(year >= 1 && year <= 9999)) throw clockError();
  return ms;
}

/** `bind(wasm)`: the API over an initialized narrow module. */
export function bind(wasm) {
  const flavor = wasm.buildFlavor();

  // ------------------------------------------------------------ phones

  /** A phone number in canonical E.164. */
  class PhoneNumber {
    #e164;
    #countryCode;
    #national;
    #region;
    constructor(token, e164, countryCode, national, region) {
      if (token !== PARSED) throw new TypeError("PhoneNumber.parse or PhoneNumber.fromParts makes a PhoneNumber");
      this.#e164 = e164;
      this.#countryCode = countryCode;
      this.#national = national;
      this.#region = region || undefined;
    }
    /** Parses a whole number as typed, under the default policy. */
    static parse(input) {
      return DEFAULT_PHONE_POLICY.parse(input);
    }
    /** A number from a country code (`"+44"`) and a national number. */
    static fromParts(countryCode, national) {
      return DEFAULT_PHONE_POLICY.fromParts(countryCode, national);
    }
    /** `+447401101801`. */
    get e164() {
      return this.#e164;
    }
    /** The E.164 digits without `+`. */
    get digits() {
      return this.#e164.slice(1);
    }
    /** The country calling code: 44. */
    get countryCode() {
      return this.#countryCode;
    }
    /** The national significant number. */
    get national() {
      return this.#national;
    }
    /** The two-letter region, or undefined. */
    get region() {
      return this.#region;
    }
    /** True when both are the same number. */
    equals(other) {
      return other instanceof PhoneNumber && other.e164 === this.#e164;
    }
    /** The masked form for logs: `+44 7401 ••• 801`. */
    toString() {
      const national = this.#national;
      const len = national.length;
      const shown = Math.min(Math.max(len - 3, 0), 7);
      const head = Math.min(Math.ceil(shown / 2), 4);
      const tail = shown - head;
      let out = `+${this.#countryCode} `;
      if (head > 0) out += `${national.slice(0, head)} `;
      out += "•••";
      if (tail > 0) out += ` ${national.slice(len - tail)}`;
      return out;
    }
  }
  const PARSED = Symbol("parsed");

  /** A phone input: longer than the core reads becomes one it refuses. */
  function phoneInput(value, argument) {
    return shortString(value, argument, MAX_PHONE_INPUT) ?? "0".repeat(MAX_PHONE_INPUT + 1);
  }

  /** What a service accepts as a phone number. */
  class PhonePolicy {
    #region;
    #allowed;
    #mobile;
    constructor(region = "GB", allowed = null, mobile = true) {
      this.#region = region;
      this.#allowed = allowed;
      this.#mobile = mobile;
    }
    static ukOnly() {
      return new PhonePolicy("GB", [44], true);
    }
    allowOnly(codes) {
      const bad = () => argumentError("codes", "an array of country codes (1 to 999)");
      if (!Array.isArray(codes) || codes.length > 1000) throw bad();
      for (const c of codes) if (!(whole(c) >= 1 && c <= 999)) throw bad();
      const sorted = [...new Set(codes)].sort((a, b) => a - b);
      return new PhonePolicy(this.#region, sorted, this.#mobile);
    }
    allowAll() {
      return new PhonePolicy(this.#region, null, this.#mobile);
    }
    withDefaultRegion(region) {
      const r = shortString(region, "region", 8) ?? "";
      if (!wasm.region_known(r)) {
        throw new OtpflowError(
          "invalid phone number: unknown region",
          { code: "phone_unknown_region", httpStatus: 400, retryAfter: null },
          { code: "phone_unknown_region", httpStatus: 400, retryAfter: null, message: "invalid phone number: unknown region" },
        );
      }
      return new PhonePolicy(r.toUpperCase(), this.#allowed, this.#mobile);
    }
    withoutDefaultRegion() {
      return new PhonePolicy("", this.#allowed, this.#mobile);
    }
    requireMobile(required) {
      if (typeof required !== "boolean") throw argumentError("required", "a boolean");
      return new PhonePolicy(this.#region, this.#allowed, required);
    }
    get defaultRegion() {
      return this.#region || undefined;
    }
    get allowedCountryCodes() {
      return this.#allowed ? [...this.#allowed] : undefined;
    }
    get requiresMobile() {
      return this.#mobile;
    }
    #bytes() {
      const w = new Writer().s(this.#region);
      if (this.#allowed) {
        w.u8(1).u16(this.#allowed.length);
        for (const c of this.#allowed) w.u16(c);
      } else {
        w.u8(0);
      }
      return w.u8(this.#mobile ? 1 : 0).done();
    }
    #answer(bytes) {
      const r = new Reader(bytes);
      if (r.u8() !== 0) throw readError(r);
      return new PhoneNumber(PARSED, r.s(), r.u16(), r.s(), r.s());
    }
    parse(input) {
      return this.#answer(wasm.phone(phoneInput(input, "input"), false, "", this.#bytes()));
    }
    fromParts(countryCode, national) {
      const code = shortString(countryCode, "countryCode", 1024) ?? "x";
      return this.#answer(wasm.phone(phoneInput(national, "national"), true, code, this.#bytes()));
    }
  }
  const DEFAULT_PHONE_POLICY = new PhonePolicy();

  // ------------------------------------------------------------ policies

  const SETTINGS = [
    ["codeLength", 0, "code_length"],
    ["codeLifetime", 1, "code_lifetime"],
    ["maxChecks", 2, "max_checks"],
    ["maxSends", 3, "max_sends"],
    ["resendCooldown", 4, "resend_cooldown"],
    ["failureCap", 5, "failure_cap"],
    ["failureWindow", 6, "failure_window"],
    ["lockout", 7, "lockout"],
    ["subjectSendCap", 8, "subject_send_cap"],
    ["subjectSendWindow", 9, "subject_send_window"],
    ["rangePrefix", 12, "range_prefix"],
  ];
  const COUNTS = new Set([0, 2, 3, 5, 8, 12]);

  /** Code length, lifetimes, budgets, cooldowns and lockouts, checked once. */
  class Policy {
    #bytes;
    #info;
    /** The defaults. */
    constructor(bytes = EMPTY) {
      const r = new Reader(wasm.policy_info(bytes));
      if (r.u8() !== 0) throw policyError(r.s());
      this.#bytes = bytes;
      this.#info = {
        codeLength: r.u8(),
        codeLifetime: r.f64(),
        maxChecks: r.u32(),
        maxSends: r.u32(),
        resendCooldown: r.f64(),
        failureCap: r.u32(),
        failureWindow: r.f64(),
        lockout: r.f64(),
        subjectSendCap: r.u32(),
        subjectSendWindow: r.f64(),
        resendMode: r.u8() ? "new_code" : "same_code",
        rates: KINDS.map(() => {
          const burst = r.opt();
          const interval = r.opt();
          return burst === null ? null : { burst, interval };
        }),
        rangePrefix: r.u8(),
        deniedPrefixes: Array.from({ length: r.u16() }, () => r.s()),
      };
    }
    static builder() {
      return new PolicyBuilder([], null);
    }
    get codeLength() {
      return this.#info.codeLength;
    }
    get codeLifetime() {
      return this.#info.codeLifetime;
    }
    get maxChecks() {
      return this.#info.maxChecks;
    }
    get maxSends() {
      return this.#info.maxSends;
    }
    get resendCooldown() {
      return this.#info.resendCooldown;
    }
    get failureCap() {
      return this.#info.failureCap;
    }
    get failureWindow() {
      return this.#info.failureWindow;
    }
    get lockout() {
      return this.#info.lockout;
    }
    get subjectSendCap() {
      return this.#info.subjectSendCap;
    }
    get subjectSendWindow() {
      return this.#info.subjectSendWindow;
    }
    get resendMode() {
      return this.#info.resendMode;
    }
    /** A budget kind's rate, `{ burst, interval }`, or null. */
    budgetRate(kind) {
      const i = KINDS.indexOf(kind);
      if (i < 0) throw argumentError("kind", "a budget kind");
      const rate = this.#info.rates[i];
      return rate && { ...rate };
    }
    get rangePrefix() {
      return this.#info.rangePrefix;
    }
    get deniedPrefixes() {
      return [...this.#info.deniedPrefixes];
    }
    /** The settings as the module reads them (for a Verifier). */
    get _bytes() {
      return this.#bytes;
    }
  }

  /** Builds a Policy; `build()` checks every setting. */
  class PolicyBuilder {
    #settings;
    #invalid;
    constructor(settings, invalid) {
      this.#settings = settings;
      this.#invalid = invalid;
    }
    #with(bytes) {
      return new PolicyBuilder([...this.#settings, bytes], this.#invalid);
    }
    #refuse(name) {
      return new PolicyBuilder(this.#settings, this.#invalid ?? name);
    }
    resendMode(mode) {
      if (mode !== "same_code" && mode !== "new_code") return this.#refuse("resend_mode");
      return this.#with(new Writer().u8(10).f64(mode === "new_code" ? 1 : 0).done());
    }
    budgetRate(kind, burst, intervalSeconds) {
      const k = KINDS.indexOf(kind);
      if (k < 0) return this.#refuse("budget_rate");
      if (burst === undefined || burst === null) {
        return this.#with(new Writer().u8(11).u8(k).f64(NaN).f64(NaN).done());
      }
      if (whole(burst) === undefined || typeof intervalSeconds !== "number" || !Number.isFinite(intervalSeconds)) {
        return this.#refuse("budget_rate");
      }
      return this.#with(new Writer().u8(11).u8(k).f64(burst).f64(intervalSeconds).done());
    }
    denyPrefix(prefix) {
      if (typeof prefix !== "string" || prefix.length > 15) return this.#refuse("deny_prefix");
      return this.#with(new Writer().u8(13).s(prefix).done());
    }
    static {
      // The number settings: counts are whole numbers, durations seconds.
      for (const [js, tag, core] of SETTINGS) {
        this.prototype[js] = function (value) {
          const ok = COUNTS.has(tag)
            ? whole(value) !== undefined && (tag !== 0 && tag !== 12 ? true : value <= 255)
            : typeof value === "number" && Number.isFinite(value) && Math.abs(value) <= 1e9;
          return ok ? this.#with(new Writer().u8(tag).f64(value).done()) : this.#refuse(core);
        };
      }
    }
    build() {
      if (this.#invalid) throw policyError(this.#invalid);
      const all = [];
      for (const s of this.#settings) all.push(...s);
      try {
        return new Policy(Uint8Array.from(all));
      } catch (e) {
        // The core names the code length it refused: the last one set.
        const last = this.#settings.findLast((b) => b[0] === 0 && b.length === 9);
        if (e.setting !== "codeLength" || !last) throw e;
        throw policyError("code_length", new DataView(last.buffer, last.byteOffset).getFloat64(1, true));
      }
    }
  }

  // ------------------------------------------------------------ keys

  /** The secret keys codes are derived with, by id (kept in the module). */
  class KeyRing {
    #keys;
    constructor(id, secret, keys) {
      if (id === FROM_KEYS) {
        this.#keys = keys;
        return;
      }
      const i = keyId(id);
      const bytes = secretBytes(secret);
      this.#keys = wasm.Keys.create(i, bytes);
      bytes.fill(0);
    }
    /** A ring with a fresh random 32-byte key. */
    static generate(id) {
      const i = keyId(id);
      const bytes = randomBytes(32);
      const keys = wasm.Keys.create(i, bytes);
      bytes.fill(0);
      return new KeyRing(FROM_KEYS, null, keys);
    }
    /** Makes a new key current; the previous one still checks its codes. */
    rotate(id, secret) {
      const i = keyId(id);
      const bytes = secretBytes(secret);
      const refused = this.#keys.rotate(i, bytes);
      bytes.fill(0);
      if (refused) throw keyError(refused, i, bytes.length);
    }
    /** Drops a retired key. */
    remove(id) {
      const i = keyId(id);
      const refused = this.#keys.remove(i);
      if (refused) throw keyError(refused, i);
    }
    get currentId() {
      return this.#keys.current();
    }
    has(id) {
      const i = whole(id);
      return i !== undefined && this.#keys.has(i);
    }
    /** The module's ring (for a Verifier). */
    get _keys() {
      return this.#keys;
    }
  }
  const FROM_KEYS = Symbol("keys");

  function keyId(id) {
    const i = whole(id);
    if (i === undefined) throw argumentError("id", "a whole number from 0 to 4294967295");
    return i;
  }

  /** A copy of the secret, refused before any copy when of a wrong length. */
  function secretBytes(secret) {
    if (!(secret instanceof Uint8Array)) throw argumentError("secret", "a Uint8Array");
    if (secret.length < 32 || secret.length > 64) throw keyError(1, 0, secret.length);
    return secret.slice();
  }

  function randomBytes(n) {
    const bytes = new Uint8Array(n);
    try {
      globalThis.crypto.getRandomValues(bytes);
    } catch {
      throw randomError();
    }
    return bytes;
  }

  // ------------------------------------------------------------ stores

  /** A store in memory, for one process. */
  class MemoryStore {
    #records = new Map();
    #lastVersion = 0;
    load(key) {
      const entry = this.#records.get(String(key));
      return Promise.resolve(entry ? { record: entry[0].slice(), version: entry[1] } : null);
    }
    compareAndSwap(key, expected, record, expiresAt) {
      key = String(key);
      const entry = this.#records.get(key);
      const matches = entry
        ? typeof expected === "number" && expected === entry[1]
        : expected === null || expected === undefined;
      if (!matches) return Promise.resolve(false);
      this.#lastVersion += 1;
      this.#records.set(key, [new Uint8Array(record), this.#lastVersion, Number(expiresAt)]);
      return Promise.resolve(true);
    }
    get size() {
      return this.#records.size;
    }
    purgeExpired(now) {
      const at = now ?? Date.now();
      let dropped = 0;
      for (const [key, entry] of [...this.#records]) {
        if (entry[2] <= at) {
          this.#records.delete(key);
          dropped += 1;
        }
      }
      return dropped;
    }
  }

  /** A store object's two methods. */
  class StoreCalls {
    constructor(store) {
      const bad = () => argumentError("store", "an object with load and compareAndSwap methods");
      if (store === null || typeof store !== "object") throw bad();
      this.store = store;
      this.loadFn = store.load;
      this.casFn = store.compareAndSwap;
      if (typeof this.loadFn !== "function" || typeof this.casFn !== "function") throw bad();
    }
    /** `[record bytes, version]`, or null. */
    async load(key) {
      let returned;
      try {
        returned = this.loadFn.call(this.store, key);
      } catch (e) {
        throw storeError("load threw", e);
      }
      let loaded;
      try {
        loaded = await returned;
      } catch (e) {
        throw storeError("load rejected", e);
      }
      if (loaded === null || loaded === undefined) return null;
      const version = loaded.version;
      if (version === null || version === undefined) throw storeError("load gave a record without a version");
      const record = loaded.record;
      if (!(record instanceof Uint8Array) || record.length > MAX_RECORD_BYTES) {
        throw storeError("load gave a record that is not one");
      }
      if (record.length === 0) throw storeError("load gave a record that does not decode");
      return [record, version];
    }
    async compareAndSwap(key, expected, record, expiresAt) {
      let returned;
      try {
        returned = this.casFn.call(this.store, key, expected, record, expiresAt);
      } catch (e) {
        throw storeError("compareAndSwap threw", e);
      }
      let swapped;
      try {
        swapped = await returned;
      } catch (e) {
        throw storeError("compareAndSwap rejected", e);
      }
      if (typeof swapped !== "boolean") throw storeError("compareAndSwap gave neither true nor false");
      return swapped;
    }
  }

  // ------------------------------------------------------------ verifier

  function readWrite(r) {
    if (!r.u8()) return null;
    return { record: r.bytes(), expiresAt: r.f64() };
  }

  function readSent(r) {
    const sent = { code: r.s(), channel: r.s(), generation: r.u32(), expiresAt: r.date() };
    const flags = r.u8();
    sent.resent = (flags & 1) !== 0;
    sent.newCode = (flags & 2) !== 0;
    sent.sendsLeft = r.u32();
    sent.resendAt = r.date();
    return sent;
  }

  function readValue(op, r) {
    switch (op) {
      case OP.start:
      case OP.resend:
        return readSent(r);
      case OP.verify:
        return { generation: r.u32(), channel: r.s(), validatedAt: r.date() };
      case OP.status:
        return {
          state: r.s(),
          generation: r.u32(),
          channel: r.s(),
          expiresAt: r.date(),
          attemptsLeft: r.u32(),
          sendsLeft: r.u32(),
          resendAfter: r.opt(),
          lockedUntil: r.optDate(),
        };
      default:
        return undefined;
    }
  }

  const EVENT_TYPES = ["sent", "resent", "checkFailed", "validated", "expired", "locked", "canceled", "budgetRefused"];

  function readEvent(r) {
    const kind = r.u8();
    const purpose = r.s();
    const phone = r.s();
    const generation = r.u32();
    if (kind === 255) return { type: "other" };
    const e = { type: EVENT_TYPES[kind], purpose, phone, generation };
    switch (kind) {
      case 0:
      case 1: {
        e.code = r.s();
        e.channel = r.s();
        e.expiresAt = r.date();
        const [g, s] = [r.u32(), r.u32()];
        const flags = r.u8();
        if (kind === 1) e.newCode = (flags & 2) !== 0;
        e.send = `${g}.${s}`;
        e.suppressed = (flags & 1) !== 0;
        break;
      }
      case 2:
        e.attemptsLeft = r.u32();
        break;
      case 5:
        e.until = r.optDate();
        break;
    }
    return e;
  }

  /** A step's answer: the write, whether it spends, the outcome, events. */
  function readStep(op, bytes) {
    const r = new Reader(bytes);
    if (r.u8() === 2) throw readOwn(r);
    const write = readWrite(r);
    const spends = r.u8() === 1;
    const ok = r.u8() === 0;
    const value = ok ? readValue(op, r) : undefined;
    const error = ok ? undefined : readError(r);
    const events = Array.from({ length: r.u8() }, () => readEvent(r));
    return { write, spends, value, error, events };
  }

  /** Runs validations over a store object (see the package README). */
  class Verifier {
    #core;
    #policy;
    #store;
    #clock;
    #onEvent;
    #maxRetries;
    constructor(store, keys, policy, options) {
      const calls = new StoreCalls(store);
      if (!(keys instanceof KeyRing)) throw argumentError("keys", "a KeyRing");
      if (!(policy instanceof Policy)) throw argumentError("policy", "a Policy");
      if (options !== undefined && options !== null && typeof options !== "object") {
        throw argumentError("options", "an object");
      }
      const option = (name) => (options === undefined || options === null ? undefined : options[name]);
      const fn = (name) => {
        const f = option(name);
        if (f !== undefined && typeof f !== "function") throw argumentError(name, "a function");
        return f;
      };
      const retries = option("maxRetries");
      if (retries !== undefined && !(whole(retries) <= MAX_RETRIES)) {
        throw argumentError("maxRetries", "a whole number from 0 to 100");
      }
      this.#store = calls;
      this.#clock = fn("clock");
      this.#onEvent = fn("onEvent");
      this.#maxRetries = retries ?? DEFAULT_MAX_RETRIES;
      this.#policy = policy;
      this.#core = wasm.Core.create(policy._bytes, keys._keys);
    }

    /** Replaces the key ring; calls in flight finish with the keys they started with. */
    setKeys(keys) {
      if (!(keys instanceof KeyRing)) throw argumentError("keys", "a KeyRing");
      this.#core = wasm.Core.create(this.#policy._bytes, keys._keys);
    }

    get policy() {
      return this.#policy;
    }

    start(purpose, phone, channel, context) {
      return this.startWithin(undefined, purpose, phone, channel, context);
    }

    startWithin(budgets, purpose, phone, channel, context) {
      return this.#call(OP.start, purpose, phone, context, budgets, () => {
        const c = channelIndex(channel);
        return c === 255 ? 0 : c;
      });
    }

    resend(purpose, phone, channel, context) {
      return this.resendWithin(undefined, purpose, phone, channel, context);
    }

    resendWithin(budgets, purpose, phone, channel, context) {
      return this.#call(OP.resend, purpose, phone, context, budgets, () => channelIndex(channel));
    }

    verify(purpose, phone, code, context) {
      return this.#call(OP.verify, purpose, phone, context, undefined, () => 255, () => {
        // A code longer than the core reads is malformed, whatever it holds.
        return shortString(code, "code", MAX_CODE_INPUT) ?? "x";
      });
    }

    cancel(purpose, phone) {
      return this.#call(OP.cancel, purpose, phone, undefined, undefined, () => 255).then(() => undefined);
    }

    status(purpose, phone) {
      return this.#call(OP.status, purpose, phone, undefined, undefined, () => 255);
    }

    /** Checks the arguments, then runs the call (a rejected promise for bad ones). */
    #call(op, purpose, phone, context, budgets, channelOf, inputOf = () => "") {
      let args;
      try {
        const label = shortString(purpose, "purpose", MAX_LABEL) ?? "";
        if (!(phone instanceof PhoneNumber)) throw argumentError("phone", "a PhoneNumber");
        const ctx = encodeContext(context);
        const budgetBytes = encodeBudgets(budgets);
        const channel = channelOf();
        const input = inputOf();
        if (op === OP.start || op === OP.resend) randomBytes(16);
        args = { op, label, e164: phone.e164, ctx, budgetBytes, channel, input };
      } catch (e) {
        return Promise.reject(e);
      }
      return this.#run(this.#core, args);
    }

    /** The time, from the injected clock or `Date.now()`. */
    #now() {
      let value;
      try {
        value = this.#clock ? this.#clock() : Date.now();
      } catch {
        throw clockError();
      }
      return instantMs(value);
    }

    /**
     * Hands each event to `onEvent`, all of them even if one call throws;
     * the first exception is then rethrown (the write stands).
     */
    #emit(events) {
      if (!this.#onEvent) return;
      let first;
      let threw = false;
      for (const e of events) {
        try {
          this.#onEvent.call(undefined, e);
        } catch (err) {
          if (!threw) first = err;
          threw = true;
        }
      }
      if (threw) throw first;
    }

    /** load → step → (budgets) → compare-and-swap, again on a conflict. */
    async #run(core, a) {
      // The subject (purpose) and the budgets first, then the clock.
      const keys = new Reader(core.keys(a.label, a.e164, a.budgetBytes));
      const status = keys.u8();
      if (status === 1) throw readError(keys);
      if (status === 2) throw argumentError("budgets.labels", "an array of up to 32 labels of a-z0-9-_.");
      const now = this.#now();
      const key = keys.s();
      const budgetKeys = Array.from({ length: keys.u8() }, () => [keys.s(), keys.s()]);
      for (let attempt = 0; attempt <= this.#maxRetries; attempt++) {
        const loaded = await this.#store.load(key);
        const random = a.op === OP.start || a.op === OP.resend ? randomBytes(32) : EMPTY;
        const step = readStep(
          a.op,
          core.step(a.op, a.label, a.e164, a.ctx, loaded ? loaded[0] : EMPTY, a.channel, a.input, now, random),
        );
        const expected = loaded ? loaded[1] : null;
        if (!step.write) {
          this.#emit(step.events);
          if (step.error) throw step.error;
          return step.value;
        }
        const spends = step.spends && budgetKeys.length > 0;
        const spent = [];
        if (spends) {
          let refused = await this.#checkAll(core, a, budgetKeys, now);
          if (!refused) refused = await this.#spendAll(core, a, budgetKeys, step.write.record, now, spent);
          if (refused) {
            await this.#refundAll(core, a, budgetKeys, spent, step.write.record, now);
            if (refused.code === "budget_exhausted") {
              this.#emit([
                {
                  type: "budgetRefused",
                  purpose: a.label,
                  phone: a.e164,
                  generation: 0,
                  budget: refused.budget,
                  retryAfter: refused.retryAfter,
                },
              ]);
            }
            throw refused;
          }
        }
        let swapped;
        let failure;
        try {
          swapped = await this.#store.compareAndSwap(key, expected, step.write.record, step.write.expiresAt);
        } catch (e) {
          failure = e;
        }
        if (spends && swapped !== true) {
          await this.#refundAll(core, a, budgetKeys, spent, step.write.record, now);
        }
        if (failure) throw failure;
        if (!swapped) continue;
        this.#emit(step.events);
        if (step.error) throw step.error;
        return step.value;
      }
      throw contentionError();
    }

    /**
     * Reads every budget key (writes nothing): the refusal that allows a
     * send last (the core's `allows_last`, in the module), if any.
     */
    async #checkAll(core, a, budgetKeys, now) {
      const w = new Writer();
      for (const [key] of budgetKeys) {
        const loaded = await this.#store.load(key);
        const bytes = loaded ? loaded[0] : EMPTY;
        w.raw(new Uint8Array(new Uint32Array([bytes.length]).buffer)).raw(bytes);
      }
      const r = new Reader(core.check_budgets(a.label, a.e164, a.budgetBytes, w.done(), now));
      if (r.u8() === 2) throw readOwn(r);
      return r.u8() ? readError(r) : null;
    }

    /** Spends from each key in turn; a key that refuses stops it. */
    async #spendAll(core, a, budgetKeys, sent, now, spent) {
      for (let i = 0; i < budgetKeys.length; i++) {
        const refused = await this.#update(core, a, budgetKeys[i][0], i, false, sent, now);
        if (refused) return refused;
        spent.push(i);
      }
      return null;
    }

    /** Gives back the spends made (a failed give-back is not the call's error). */
    async #refundAll(core, a, budgetKeys, spent, sent, now) {
      for (const i of spent) {
        try {
          await this.#update(core, a, budgetKeys[i][0], i, true, sent, now);
        } catch {
          // It costs the key one place for at most its fill time.
        }
      }
    }

    /** The compare-and-swap loop over a budget key's record. */
    async #update(core, a, key, index, refund, sent, now) {
      for (let attempt = 0; attempt <= this.#maxRetries; attempt++) {
        const loaded = await this.#store.load(key);
        const r = new Reader(
          core.budget_step(a.label, a.e164, a.budgetBytes, index, refund, loaded ? loaded[0] : EMPTY, sent, now),
        );
        if (r.u8() === 2) throw readOwn(r);
        const write = readWrite(r);
        const refused = r.u8() ? readError(r) : null;
        if (write) {
          const expected = loaded ? loaded[1] : null;
          if (!(await this.#store.compareAndSwap(key, expected, write.record, write.expiresAt))) continue;
        }
        return refused;
      }
      throw contentionError();
    }
  }

  function contentionError() {
    return new OtpflowError(
      "too many concurrent changes; try again",
      { code: "contention", httpStatus: 503, retryAfter: null },
      UNAVAILABLE,
    );
  }

  return {
    OtpflowError,
    PhoneNumber,
    PhonePolicy,
    Policy,
    PolicyBuilder,
    KeyRing,
    MemoryStore,
    Verifier,
    buildFlavor: () => flavor,
  };
}
