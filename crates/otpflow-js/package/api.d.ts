// otpflow's API: the declarations of package/api.js (see the README).

/** A kind of budget key (see `Budgets`). */
export type BudgetKind = "address" | "range" | "country" | "global" | "label";

/** A budget key's rate: `burst` sends at once, then one per `interval` seconds. */
export interface BudgetRate {
  burst: number;
  interval: number;
}

/** A record as a store keeps it: the bytes and their version. */
export interface StoredRecord {
  /** The record's bytes, as `compareAndSwap` was given them. */
  record: Uint8Array;
  /** The version of this write: opaque to the verifier, never null. */
  version: unknown;
}

/**
 * Where records live, one per subject (`purpose:e164`), written only by
 * compare-and-swap. Both methods may return a value or a Promise of it.
 */
export interface Store {
  /** The record for `key` and its version, or null when there is none. */
  load(key: string): Promise<StoredRecord | null | undefined> | StoredRecord | null | undefined;
  /**
   * Writes `record` only if the stored version is still `expected` (null:
   * only if there is no record), atomically with that comparison, under a
   * version the key has not had before; true when written, false when the
   * version differed. `expiresAt` (ms since the epoch) is the earliest the
   * record may be dropped.
   */
  compareAndSwap(
    key: string,
    expected: unknown,
    record: Uint8Array,
    expiresAt: number,
  ): Promise<boolean> | boolean;
}

/** How the code reaches the user; otpflow sends nothing itself. */
export type Channel = "sms" | "whatsapp" | "voice" | "none";

/**
 * The budgets a send spends from besides the subject's own, against SMS
 * pumping (see `Verifier.startWithin`). A kind the policy gives no rate
 * (`PolicyBuilder.budgetRate`) is not counted.
 */
export interface Budgets {
  /** The client's IP address (IPv4, or IPv6 counted by its /64). */
  address?: string;
  /** The number's range: its first `rangePrefix` E.164 digits. */
  range?: boolean;
  /** The number's country (calling code and region). */
  country?: boolean;
  /** The one global key (the service's ceiling). */
  global?: boolean;
  /** Labels of the caller's (a session, a device, an API client): 1-32 bytes of `a-z0-9-_.`. */
  labels?: string[];
}

/**
 * What a code approves (a payment's amount and payee, a session id), as
 * named string fields: a code sent under a context validates only when
 * `verify` names the same one; any other context, or none, is a wrong code
 * (`code_mismatch`). Fields are taken in the order of their names, so
 * `{ amount: "12.50 EUR", payee: "ACME Ltd" }` is otpflow's
 * `Context::transaction("12.50 EUR", "ACME Ltd")` and `{ session: id }` its
 * `Context::session(id)`. Pass the same context to every call of one
 * validation.
 */
export type Context = Record<string, string>;

/** Options of a `Verifier`. */
export interface VerifierOptions {
  /** The time, as milliseconds since the epoch or a Date (default `Date.now`). */
  clock?: () => number | Date;
  /** Called with each event once the write that made it is stored. */
  onEvent?: (event: OtpEvent) => void;
  /** Compare-and-swap retries after a conflict before `contention` (default 8, at most 100). */
  maxRetries?: number;
}

/** A code went out: what `start` and `resend` resolve to. */
export interface Sent {
  /** The code to deliver. */
  code: string;
  channel: Channel;
  /** The validation's number for this subject. */
  generation: number;
  /** When the code stops working. */
  expiresAt: Date;
  /** True when this resent a live validation (also a `start` that found one). */
  resent: boolean;
  /** True when the code differs from the one sent before. */
  newCode: boolean;
  /** Sends left for this validation. */
  sendsLeft: number;
  /** The earliest a resend is accepted. */
  resendAt: Date;
}

/** The right code: what `verify` resolves to. */
export interface Validated {
  generation: number;
  channel: Channel;
  validatedAt: Date;
}

/** A validation as of now: what `status` resolves to. */
export interface Status {
  state: "sent" | "validated" | "expired" | "locked" | "canceled";
  generation: number;
  channel: Channel;
  expiresAt: Date;
  attemptsLeft: number;
  sendsLeft: number;
  /** Seconds until a resend is accepted, or null. */
  resendAfter: number | null;
  /** The end of the subject's lockout, or null. */
  lockedUntil: Date | null;
}

/** What happened, for message senders, webhooks and audit logs. */
export type OtpEvent = { purpose: string; phone: string; generation: number } & (
  | { type: "sent"; code: string; channel: Channel; expiresAt: Date }
  | { type: "resent"; code: string; channel: Channel; expiresAt: Date; newCode: boolean }
  | { type: "checkFailed"; attemptsLeft: number }
  | { type: "validated" }
  | { type: "expired" }
  | { type: "locked"; until: Date | null }
  | { type: "canceled" }
  | { type: "budgetRefused"; budget: "address" | "range" | "country" | "global" | "label"; retryAfter: number }
);

/** The errors every call throws or rejects with (see the README's table of codes). */
export class OtpflowError extends Error {
  name: "OtpflowError";
  /** The stable machine code (`code_mismatch`, `phone_not_mobile`, `invalid_argument`…). */
  code: string;
  /** The HTTP status a web service would answer with. */
  httpStatus: number;
  /** Seconds (rounded up) until a retry can succeed, or null. */
  retryAfter: number | null;
  /** The enumeration-safe answer for someone who may not hold the number. */
  public: { code: string; httpStatus: number; retryAfter: number | null; message: string };
  /** For `code_mismatch`. */
  attemptsLeft?: number;
  /** For `budget_exhausted`: the kind of budget key that allows a send last. */
  budget?: BudgetKind;
  /** For phone errors: what is wrong with the caller's own input. */
  position?: number;
  character?: string;
  max?: number;
  missing?: ("countryCode" | "national")[];
  countryCode?: number;
  /** For `invalid_argument`: the argument. */
  argument?: string;
  /** For `invalid_policy`: the setting out of range. */
  setting?: string;
  /** For `store_unavailable`: what the store threw, if it threw. */
  cause?: unknown;
}

/** A phone number in canonical E.164. */
export class PhoneNumber {
  private constructor();
  /** Parses a number as typed, under the default policy (GB national input, every country, mobiles only). */
  static parse(input: string): PhoneNumber;
  /** A number from a country code (`"+44"`) and a national number (`"07401 101801"`). */
  static fromParts(countryCode: string, national: string): PhoneNumber;
  /** `+447401101801`. */
  readonly e164: string;
  /** `447401101801`. */
  readonly digits: string;
  /** `44`. */
  readonly countryCode: number;
  /** `7401101801`. */
  readonly national: string;
  /** `"GB"`, or undefined (non-geographic numbers; in the slim build, non-UK numbers). */
  readonly region: string | undefined;
  /** True when both are the same number. */
  equals(other: PhoneNumber): boolean;
  /** The masked form for logs: `+44 7401 ••• 801`. */
  toString(): string;
}

/** What a service accepts as a phone number; each method returns a new policy. */
export class PhonePolicy {
  /** GB national input, every country, mobiles only. */
  constructor();
  /** +44 only. */
  static ukOnly(): PhonePolicy;
  allowOnly(codes: number[]): PhonePolicy;
  allowAll(): PhonePolicy;
  withDefaultRegion(region: string): PhonePolicy;
  withoutDefaultRegion(): PhonePolicy;
  requireMobile(required: boolean): PhonePolicy;
  readonly defaultRegion: string | undefined;
  readonly allowedCountryCodes: number[] | undefined;
  readonly requiresMobile: boolean;
  parse(input: string): PhoneNumber;
  fromParts(countryCode: string, national: string): PhoneNumber;
}

/** Code length, lifetimes, budgets, cooldowns and lockouts (durations in seconds). */
export class Policy {
  /** The defaults. */
  constructor();
  static builder(): PolicyBuilder;
  readonly codeLength: number;
  readonly codeLifetime: number;
  readonly maxChecks: number;
  readonly maxSends: number;
  readonly resendCooldown: number;
  readonly failureCap: number;
  readonly failureWindow: number;
  readonly lockout: number;
  readonly subjectSendCap: number;
  readonly subjectSendWindow: number;
  readonly resendMode: "same_code" | "new_code";
  budgetRate(kind: BudgetKind): BudgetRate | null;
  readonly rangePrefix: number;
  readonly deniedPrefixes: string[];
}

/** Builds a Policy; each setter returns a new builder; `build()` throws `invalid_policy` naming the first `setting` out of range. */
export class PolicyBuilder {
  private constructor();
  codeLength(digits: number): PolicyBuilder;
  codeLifetime(seconds: number): PolicyBuilder;
  maxChecks(n: number): PolicyBuilder;
  maxSends(n: number): PolicyBuilder;
  resendCooldown(seconds: number): PolicyBuilder;
  failureCap(n: number): PolicyBuilder;
  failureWindow(seconds: number): PolicyBuilder;
  lockout(seconds: number): PolicyBuilder;
  subjectSendCap(n: number): PolicyBuilder;
  subjectSendWindow(seconds: number): PolicyBuilder;
  resendMode(mode: "same_code" | "new_code"): PolicyBuilder;
  /** `burst` sends at once, then one per `intervalSeconds`; null stops counting keys of that kind. */
  budgetRate(kind: BudgetKind, burst?: number | null, intervalSeconds?: number): PolicyBuilder;
  rangePrefix(digits: number): PolicyBuilder;
  denyPrefix(prefix: string): PolicyBuilder;
  build(): Policy;
}

/** The secret HMAC keys codes are derived with, by id; the bytes are kept in the module. */
export class KeyRing {
  /** A ring whose current key has this id (0 to 2³²−1) and these 32–64 bytes. */
  constructor(id: number, secret: Uint8Array);
  /** A ring with a fresh random 32-byte key. */
  static generate(id: number): KeyRing;
  rotate(id: number, secret: Uint8Array): void;
  remove(id: number): void;
  readonly currentId: number;
  has(id: number): boolean;
}

/** A store in memory, for one process. */
export class MemoryStore implements Store {
  constructor();
  load(key: string): Promise<StoredRecord | null>;
  compareAndSwap(key: string, expected: unknown, record: Uint8Array, expiresAt: number): Promise<boolean>;
  readonly size: number;
  /** Drops the records whose expiresAt is at or before `now` (default `Date.now()`); how many. */
  purgeExpired(now?: number): number;
}

/** Runs validations over a store object; every method returns a Promise that rejects with an OtpflowError. */
export class Verifier {
  constructor(store: Store, keys: KeyRing, policy: Policy, options?: VerifierOptions);
  setKeys(keys: KeyRing): void;
  readonly policy: Policy;
  start(purpose: string, phone: PhoneNumber, channel?: Channel, context?: Context): Promise<Sent>;
  startWithin(budgets: Budgets | null | undefined, purpose: string, phone: PhoneNumber, channel?: Channel, context?: Context): Promise<Sent>;
  resend(purpose: string, phone: PhoneNumber, channel?: Channel, context?: Context): Promise<Sent>;
  resendWithin(budgets: Budgets | null | undefined, purpose: string, phone: PhoneNumber, channel?: Channel, context?: Context): Promise<Sent>;
  verify(purpose: string, phone: PhoneNumber, code: string, context?: Context): Promise<Validated>;
  cancel(purpose: string, phone: PhoneNumber): Promise<void>;
  status(purpose: string, phone: PhoneNumber): Promise<Status>;
}

/** `"full"` (every country's numbers validated) or `"slim"`. */
export function buildFlavor(): "full" | "slim";
