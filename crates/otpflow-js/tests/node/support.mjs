// What the node tests share: the package under test, a clock the tests move,
// and stores. OTPFLOW_JS_PKG names the module to load (the full build's node
// module by default; scripts/test.sh runs the tests on the slim one too).
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";
import assert from "node:assert/strict";

const here = path.dirname(fileURLToPath(import.meta.url));
const modulePath = process.env.OTPFLOW_JS_PKG ?? path.join(here, "../../pkg/node/otpflow.js");
export const otp = await import(pathToFileURL(path.resolve(modulePath)).href);
export const flavor = otp.buildFlavor();

// 2026-11-22T12:00:00Z
export const START = Date.UTC(2026, 10, 22, 12, 0, 0);

/** A clock the test moves by hand. */
export class TestClock {
  constructor(at = START) {
    this.at = at;
    this.now = () => this.at;
  }
  advance(seconds) {
    this.at += seconds * 1000;
  }
}

/** Key bytes for tests: 32 bytes of `fill`. */
export const secret = (fill = 42) => new Uint8Array(32).fill(fill);

/**
 * A store like one a service writes over its own database: async, keeping
 * copies of the bytes, versions from a counter, compare-and-swap checked
 * and applied in one synchronous step (atomic in JavaScript). Counts what
 * it was asked, and can hold loads back until `gate` of them are waiting,
 * so concurrent calls really interleave.
 */
export class AsyncMapStore {
  constructor() {
    this.map = new Map();
    this.nextVersion = 1;
    this.loads = 0;
    this.writes = 0;
    this.conflicts = 0;
    this.waiting = [];
    this.gate = 0;
  }

  /** The next `n` loads resolve together, once all `n` are waiting. */
  holdLoads(n) {
    this.gate = n;
  }

  async load(key) {
    this.loads += 1;
    if (this.gate > 0) {
      await new Promise((resolve) => {
        this.waiting.push(resolve);
        if (this.waiting.length === this.gate) {
          this.gate = 0;
          this.waiting.splice(0).forEach((go) => go());
        }
      });
    }
    await new Promise((resolve) => setImmediate(resolve));
    const entry = this.map.get(key);
    return entry ? { record: entry.record.slice(), version: entry.version } : null;
  }

  async compareAndSwap(key, expected, record, expiresAt) {
    assert.ok(record instanceof Uint8Array, "records are Uint8Arrays");
    assert.equal(typeof expiresAt, "number");
    await new Promise((resolve) => setImmediate(resolve));
    const entry = this.map.get(key);
    if ((entry ? entry.version : null) !== expected) {
      this.conflicts += 1;
      return false;
    }
    this.writes += 1;
    this.map.set(key, { record: record.slice(), version: this.nextVersion++, expiresAt });
    return true;
  }
}

/** A verifier over `store` with a test clock; events land in `events`. */
export function setup({ store = new otp.MemoryStore(), policy = new otp.Policy(), keys } = {}) {
  const clock = new TestClock();
  const events = [];
  const verifier = new otp.Verifier(store, keys ?? new otp.KeyRing(1, secret()), policy, {
    clock: clock.now,
    onEvent: (e) => events.push(e),
  });
  const phone = otp.PhoneNumber.parse("07401 101801");
  return { verifier, store, clock, events, phone };
}

/** A code other than `code` of the same length. */
export const wrong = (code) => (code[0] === "0" ? "1" : "0") + code.slice(1);

/** The rejection of `promise`, which must reject. */
export async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail("expected a rejection");
}

/** The exception `f` throws, which it must. */
export function thrown(f) {
  try {
    f();
  } catch (e) {
    return e;
  }
  assert.fail("expected an exception");
}
