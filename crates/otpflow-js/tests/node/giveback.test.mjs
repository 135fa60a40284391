// Giving a budget spend back when the send does not happen after all: the
// subject's compare-and-swap is lost to another instance's write, or the
// store throws, or a later budget key is spent out from under the call. A
// store object steps in at exactly that moment (another verifier instance
// writes, or the write fails), then the test counts how many sends the
// address key still lets through: all of them when the spend was given
// back, one fewer when another send spent from the key in between (the
// give-back is exact or nothing, so the key errs on the side of refusing).
import { test } from "node:test";
import assert from "node:assert/strict";
import { otp, secret, rejection, TestClock, AsyncMapStore } from "./support.mjs";

const SUBJECT_KEY = "login:+447401101801";
const ADDRESS = { address: "203.0.113.7" };
const BURST = 3;

/**
 * An async store whose compareAndSwap runs a hook first, for the keys the
 * hook is set for: it may write through another verifier (a real race: the
 * other write lands between this call's load and its compare-and-swap),
 * throw (the write fails), or return `false` (the write is reported lost:
 * nothing written, as after a conflict). A hook runs once; it is removed
 * before it runs.
 */
class RacingStore extends AsyncMapStore {
  constructor() {
    super();
    this.hooks = [];
  }

  /** Runs `hook` before the first compareAndSwap of a key `matches` accepts. */
  onSwap(matches, hook) {
    this.hooks.push({ matches, hook });
  }

  async compareAndSwap(key, expected, record, expiresAt) {
    const i = this.hooks.findIndex((h) => h.matches(key));
    if (i >= 0) {
      const [{ hook }] = this.hooks.splice(i, 1);
      if ((await hook(key)) === false) {
        this.conflicts += 1;
        return false;
      }
    }
    return super.compareAndSwap(key, expected, record, expiresAt);
  }
}

/** Two verifier instances over one store and one clock, as two processes of a service. */
function instances(policy) {
  const store = new RacingStore();
  const clock = new TestClock();
  const keys = new otp.KeyRing(1, secret());
  const make = () => {
    const events = [];
    const verifier = new otp.Verifier(store, keys, policy, {
      clock: clock.now,
      onEvent: (e) => events.push(e),
    });
    return { verifier, events };
  };
  return { store, clock, a: make(), b: make() };
}

const phone = () => otp.PhoneNumber.parse("07401 101801");
/** Other UK mobiles, for counting what the address key lets through. */
const other = (i) => otp.PhoneNumber.parse(`07401 1019${String(i).padStart(2, "0")}`);

/** How many starts from ADDRESS go through before the key refuses (at most BURST + 1 tried). */
async function placesLeft(verifier) {
  for (let i = 0; i <= BURST; i++) {
    try {
      await verifier.startWithin(ADDRESS, "signup", other(i));
    } catch (e) {
      assert.equal(e.code, "budget_exhausted", `start ${i}: ${e.code}`);
      assert.equal(e.budget, "address");
      return i;
    }
  }
  assert.fail(`the address key let ${BURST + 1} sends through; its burst is ${BURST}`);
}

const addressPolicy = () => otp.Policy.builder().budgetRate("address", BURST, 600).build();

test("a send whose write is lost to another instance gives its spend back: the key is whole", async () => {
  const { store, a, b } = instances(addressPolicy());
  let raced = false;
  // Between A's spend and A's write, B starts the same subject without
  // budgets (it spends nothing from the address key).
  store.onSwap(
    (key) => key === SUBJECT_KEY,
    async () => {
      await b.verifier.start("login", phone());
      raced = true;
    },
  );
  const writesBefore = store.writes;
  // A's write conflicts; A gives its spend back and runs again over B's
  // live validation: a resend within the cooldown, refused.
  const e = await rejection(a.verifier.startWithin(ADDRESS, "login", phone()));
  assert.ok(raced, "the other instance wrote in between");
  assert.equal(e.code, "resend_too_soon");
  assert.ok(store.conflicts >= 1, "A's compare-and-swap was lost");
  assert.ok(store.writes > writesBefore);
  assert.deepEqual(a.events.map((x) => x.type), [], "A sent nothing");
  assert.deepEqual(b.events.map((x) => x.type), ["sent"]);
  assert.ok([...store.map.keys()].some((k) => k.startsWith("#budget/address:")), "A did spend first");
  // Given back: the key lets its whole burst through.
  assert.equal(await placesLeft(a.verifier), BURST);
});

test("a write lost once then retried spends once, not twice", async () => {
  const { store, a } = instances(addressPolicy());
  // The store loses A's first write of the subject (reports it not
  // written): A gives back, runs again, spends again and writes.
  store.onSwap(
    (key) => key === SUBJECT_KEY,
    async (key) => {
      assert.equal(store.map.get(key), undefined, "nothing was written to the subject yet");
      return false;
    },
  );
  const sent = await a.verifier.startWithin(ADDRESS, "login", phone());
  assert.match(sent.code, /^\d{6}$/);
  assert.ok(store.conflicts >= 1, "the first write was lost");
  assert.deepEqual(a.events.map((x) => x.type), ["sent"], "one send, one event");
  assert.equal((await a.verifier.status("login", phone())).state, "sent");
  assert.equal(await placesLeft(a.verifier), BURST - 1, "one place spent");
});

test("a store that throws on the write fails the call and the spend is given back", async () => {
  const { store, a } = instances(addressPolicy());
  const outage = new Error("connection reset");
  store.onSwap(
    (key) => key === SUBJECT_KEY,
    async () => {
      throw outage;
    },
  );
  const e = await rejection(a.verifier.startWithin(ADDRESS, "login", phone()));
  assert.equal(e.code, "store_unavailable");
  assert.equal(e.cause, outage);
  assert.deepEqual(a.events, [], "nothing sent");
  assert.equal((await rejection(a.verifier.status("login", phone()))).code, "validation_not_found");
  assert.equal(await placesLeft(a.verifier), BURST);
});

test("a later key spent out from under the call: the earlier key's spend is given back", async () => {
  const policy = otp.Policy.builder().budgetRate("address", BURST, 600).budgetRate("global", 1, 600).build();
  const { store, a, b } = instances(policy);
  // A checks both keys (both have room), spends from the address key; then,
  // before A spends from the global key, B spends its only place.
  store.onSwap(
    (key) => key.startsWith("#budget/address:"),
    async () => {
      await b.verifier.startWithin({ global: true }, "login", other(90));
    },
  );
  const e = await rejection(a.verifier.startWithin({ ...ADDRESS, global: true }, "login", phone()));
  assert.equal(e.code, "budget_exhausted");
  assert.equal(e.budget, "global");
  assert.deepEqual(
    a.events.map((x) => [x.type, x.budget]),
    [["budgetRefused", "global"]],
  );
  assert.equal((await rejection(a.verifier.status("login", phone()))).code, "validation_not_found");
  assert.equal(await placesLeft(a.verifier), BURST, "the address key's spend was given back");
});

test("when another send spent from the key in between, the spend stays (the key errs on refusing)", async () => {
  const { store, a, b } = instances(addressPolicy());
  // B starts the same subject from the same address between A's spend and
  // A's write: A's spend is no longer the key's latest, so it is not given
  // back, and the key counts both sends though only B's went out.
  store.onSwap(
    (key) => key === SUBJECT_KEY,
    async () => {
      await b.verifier.startWithin(ADDRESS, "login", phone());
    },
  );
  const e = await rejection(a.verifier.startWithin(ADDRESS, "login", phone()));
  assert.equal(e.code, "resend_too_soon");
  assert.deepEqual(b.events.map((x) => x.type), ["sent"]);
  assert.equal(await placesLeft(a.verifier), BURST - 2, "never more sends than the rate");
});
