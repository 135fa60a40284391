// The whole life cycle through the package: sent → validated / expired /
// locked / canceled, resends, budgets, lockouts, key rotation, events after
// the write, over the package's MemoryStore and over an async store object.
import { test } from "node:test";
import assert from "node:assert/strict";
import { otp, setup, secret, wrong, rejection, AsyncMapStore, START } from "./support.mjs";

for (const [name, makeStore] of [
  ["MemoryStore", () => new otp.MemoryStore()],
  ["async store object", () => new AsyncMapStore()],
]) {
  test(`start, a wrong code, the right code, then reuse refused (${name})`, async () => {
    const { verifier, store, clock, events, phone } = setup({ store: makeStore() });
    const sent = await verifier.start("login", phone);
    assert.match(sent.code, /^\d{6}$/);
    assert.equal(sent.channel, "sms");
    assert.equal(sent.generation, 1);
    assert.equal(sent.resent, false);
    assert.equal(sent.newCode, true);
    assert.equal(sent.sendsLeft, 4);
    assert.ok(sent.expiresAt instanceof Date);
    assert.equal(sent.expiresAt.getTime(), START + 600_000);
    assert.equal(sent.resendAt.getTime(), START + 30_000);
    assert.deepEqual(
      events.map((e) => [e.type, e.purpose, e.phone, e.code]),
      [["sent", "login", "+447401101801", sent.code]],
    );

    clock.advance(5);
    const miss = await rejection(verifier.verify("login", phone, wrong(sent.code)));
    assert.ok(miss instanceof Error);
    assert.equal(miss.name, "OtpflowError");
    assert.equal(miss.code, "code_mismatch");
    assert.equal(miss.httpStatus, 403);
    assert.equal(miss.attemptsLeft, 4);
    assert.equal(miss.retryAfter, null);
    assert.equal(events.at(-1).type, "checkFailed");
    assert.equal(events.at(-1).attemptsLeft, 4);

    const status = await verifier.status("login", phone);
    assert.equal(status.state, "sent");
    assert.equal(status.attemptsLeft, 4);
    assert.equal(status.resendAfter, 25);
    assert.equal(status.lockedUntil, null);

    clock.advance(5);
    const done = await verifier.verify("login", phone, sent.code.slice(0, 3) + " " + sent.code.slice(3));
    assert.equal(done.generation, 1);
    assert.equal(done.channel, "sms");
    assert.equal(done.validatedAt.getTime(), START + 10_000);
    assert.equal(events.at(-1).type, "validated");

    const again = await rejection(verifier.verify("login", phone, sent.code));
    assert.equal(again.code, "already_validated");
    assert.equal(again.httpStatus, 409);
    assert.equal((await verifier.status("login", phone)).state, "validated");
    if (store instanceof AsyncMapStore) {
      assert.equal(store.writes, 3, "start, the failed check and the success were written");
    } else {
      assert.equal(store.size, 1);
    }
  });
}

test("a malformed code spends no attempt", async () => {
  const { verifier, phone } = setup();
  await verifier.start("login", phone);
  for (const input of ["12345", "1234567", "12a456", "", "٠١٢٣٤٥", "1".repeat(10_000)]) {
    const e = await rejection(verifier.verify("login", phone, input));
    assert.equal(e.code, "malformed_code", JSON.stringify(input.slice(0, 20)));
    assert.equal(e.httpStatus, 400);
  }
  assert.equal((await verifier.status("login", phone)).attemptsLeft, 5);
  const notString = await rejection(verifier.verify("login", phone, 123456));
  assert.equal(notString.code, "invalid_argument");
  assert.equal(notString.argument, "code");
});

test("checks run out: the validation locks and the right code no longer works", async () => {
  const { verifier, events, phone } = setup();
  const sent = await verifier.start("login", phone);
  for (let left = 4; left >= 1; left--) {
    const e = await rejection(verifier.verify("login", phone, wrong(sent.code)));
    assert.equal(e.code, "code_mismatch");
    assert.equal(e.attemptsLeft, left);
  }
  const last = await rejection(verifier.verify("login", phone, wrong(sent.code)));
  assert.equal(last.code, "max_attempts_reached");
  assert.equal(last.httpStatus, 429);
  assert.deepEqual(events.slice(-2).map((e) => e.type), ["checkFailed", "locked"]);
  assert.equal(events.at(-1).until, null);
  const right = await rejection(verifier.verify("login", phone, sent.code));
  assert.equal(right.code, "max_attempts_reached");
  assert.equal((await verifier.status("login", phone)).state, "locked");
});

test("expiry: the code stops working at its lifetime, and a new start makes a new generation", async () => {
  const { verifier, clock, events, phone } = setup();
  const sent = await verifier.start("login", phone);
  clock.advance(599);
  assert.equal((await verifier.status("login", phone)).state, "sent");
  clock.advance(1);
  assert.equal((await verifier.status("login", phone)).state, "expired");
  const e = await rejection(verifier.verify("login", phone, sent.code));
  assert.equal(e.code, "validation_expired");
  assert.equal(e.httpStatus, 412);
  assert.equal(events.at(-1).type, "expired");
  const next = await verifier.start("login", phone);
  assert.equal(next.generation, 2);
  const old = await rejection(verifier.verify("login", phone, sent.code === next.code ? wrong(next.code) : sent.code));
  assert.equal(old.code, "code_mismatch");
  await verifier.verify("login", phone, next.code);
});

test("resend: cooldown with retryAfter, the same code by default, a new channel", async () => {
  const { verifier, clock, events, phone } = setup();
  const sent = await verifier.start("login", phone);
  clock.advance(10);
  const soon = await rejection(verifier.resend("login", phone));
  assert.equal(soon.code, "resend_too_soon");
  assert.equal(soon.httpStatus, 429);
  assert.equal(soon.retryAfter, 20);
  // The public answer keeps the refusal's kind; its wait is the core's
  // public one (never shorter than the real one).
  assert.equal(soon.public.code, "too_many_requests");
  assert.equal(soon.public.httpStatus, 429);
  assert.ok(soon.public.retryAfter >= 20);
  clock.advance(20);
  const again = await verifier.resend("login", phone, "whatsapp");
  assert.equal(again.code, sent.code);
  assert.equal(again.resent, true);
  assert.equal(again.newCode, false);
  assert.equal(again.channel, "whatsapp");
  assert.equal(again.sendsLeft, 3);
  assert.equal(events.at(-1).type, "resent");
  assert.equal(events.at(-1).channel, "whatsapp");
  // `start` on a live validation resends it.
  clock.advance(30);
  const viaStart = await verifier.start("login", phone, "voice");
  assert.equal(viaStart.resent, true);
  assert.equal(viaStart.code, sent.code);
  const bad = await rejection(verifier.resend("login", phone, "pigeon"));
  assert.equal(bad.code, "invalid_argument");
  assert.equal(bad.argument, "channel");
});

test("the send budget: five sends per validation, then resend_limit_reached with retryAfter", async () => {
  const { verifier, clock, phone } = setup();
  await verifier.start("login", phone);
  for (let i = 0; i < 4; i++) {
    clock.advance(30);
    await verifier.resend("login", phone);
  }
  clock.advance(30);
  const e = await rejection(verifier.resend("login", phone));
  assert.equal(e.code, "resend_limit_reached");
  assert.equal(e.httpStatus, 429);
  assert.equal(e.retryAfter, 600 - 150);
});

test("new_code resend mode: the old code stops working", async () => {
  const policy = otp.Policy.builder().resendMode("new_code").resendCooldown(0).build();
  const { verifier, phone } = setup({ policy });
  const first = await verifier.start("login", phone);
  const second = await verifier.resend("login", phone);
  assert.equal(second.newCode, true);
  if (first.code !== second.code) {
    const old = await rejection(verifier.verify("login", phone, first.code));
    assert.equal(old.code, "code_mismatch");
  }
  await verifier.verify("login", phone, second.code);
});

test("cancel: the code stops working; canceling twice is fine; unknown subjects are not found", async () => {
  const { verifier, events, phone } = setup();
  assert.equal((await rejection(verifier.cancel("login", phone))).code, "validation_not_found");
  const sent = await verifier.start("login", phone);
  assert.equal(await verifier.cancel("login", phone), undefined);
  assert.equal(events.at(-1).type, "canceled");
  await verifier.cancel("login", phone);
  const e = await rejection(verifier.verify("login", phone, sent.code));
  assert.equal(e.code, "validation_canceled");
  assert.equal(e.httpStatus, 410);
  assert.equal((await verifier.status("login", phone)).state, "canceled");
});

test("purposes are separate subjects, stored under purpose:e164", async () => {
  const store = new AsyncMapStore();
  const { verifier, phone } = setup({ store });
  const login = await verifier.start("login", phone);
  const reset = await verifier.start("password-reset", phone);
  assert.deepEqual([...store.map.keys()].sort(), ["login:+447401101801", "password-reset:+447401101801"]);
  const cross = await rejection(
    verifier.verify("password-reset", phone, login.code === reset.code ? wrong(reset.code) : login.code),
  );
  assert.equal(cross.code, "code_mismatch");
  for (const bad of ["Login", "a:b", "", "x".repeat(33), "x".repeat(100_000)]) {
    const e = await rejection(verifier.start(bad, phone));
    assert.equal(e.code, "invalid_purpose", bad.slice(0, 10));
    assert.equal(e.public.code, "invalid_request");
  }
  assert.equal((await rejection(verifier.start(42, phone))).code, "invalid_argument");
});

test("the failure cap locks the subject across new validations, with retryAfter", async () => {
  const policy = otp.Policy.builder().failureCap(3).lockout(600).build();
  const { verifier, clock, events, phone } = setup({ policy });
  let sent = await verifier.start("login", phone);
  await rejection(verifier.verify("login", phone, wrong(sent.code)));
  await rejection(verifier.verify("login", phone, wrong(sent.code)));
  // A new validation does not reset the count.
  clock.advance(600);
  sent = await verifier.start("login", phone);
  const locked = await rejection(verifier.verify("login", phone, wrong(sent.code)));
  assert.equal(locked.code, "subject_locked");
  assert.equal(locked.retryAfter, 600);
  assert.equal(events.at(-1).type, "locked");
  assert.ok(events.at(-1).until instanceof Date);
  for (const call of [
    () => verifier.start("login", phone),
    () => verifier.verify("login", phone, sent.code),
  ]) {
    const e = await rejection(call());
    assert.equal(e.code, "subject_locked");
  }
  assert.ok((await verifier.status("login", phone)).lockedUntil instanceof Date);
  clock.advance(600);
  const after = await verifier.start("login", phone);
  await verifier.verify("login", phone, after.code);
});

test("key rotation: codes of the retired key still check; a removed key ends them as expired", async () => {
  const keys = new otp.KeyRing(1, secret(1));
  const { verifier, phone } = setup({ keys });
  const other = otp.PhoneNumber.parse("+44 7401 101823");
  const a = await verifier.start("login", phone);
  const b = await verifier.start("login", other);
  keys.rotate(2, secret(2));
  assert.equal(keys.currentId, 2);
  verifier.setKeys(keys);
  await verifier.verify("login", phone, a.code);
  keys.remove(1);
  verifier.setKeys(keys);
  const gone = await rejection(verifier.verify("login", other, b.code));
  assert.equal(gone.code, "validation_expired");
  assert.equal(keys.has(1), false);
  const dup = (() => {
    try {
      keys.rotate(2, secret(3));
    } catch (e) {
      return e;
    }
  })();
  assert.equal(dup.code, "invalid_key");
  assert.equal(dup.public.code, "unavailable");
});

test("events come only after the write is stored", async () => {
  const store = new AsyncMapStore();
  const seen = [];
  const verifier = new otp.Verifier(store, new otp.KeyRing(1, secret()), new otp.Policy(), {
    onEvent: (e) => seen.push([e.type, store.writes]),
  });
  const phone = otp.PhoneNumber.parse("07401 101801");
  const sent = await verifier.start("login", phone);
  await verifier.verify("login", phone, sent.code);
  assert.deepEqual(seen, [
    ["sent", 1],
    ["validated", 2],
  ]);
});

test("a store that fails: store_unavailable with its cause, nothing written, no event", async () => {
  const inner = new AsyncMapStore();
  const failing = {
    fail: null,
    load(key) {
      if (this.fail === "load") throw new Error("connection reset");
      return inner.load(key);
    },
    compareAndSwap(...args) {
      if (this.fail === "cas") return Promise.reject(new Error("timeout"));
      if (this.fail === "answer") return "yes";
      return inner.compareAndSwap(...args);
    },
  };
  const { verifier, events, phone } = setup({ store: failing });
  const sent = await verifier.start("login", phone);
  const before = events.length;
  for (const mode of ["load", "cas", "answer"]) {
    failing.fail = mode;
    const e = await rejection(verifier.verify("login", phone, sent.code));
    assert.equal(e.code, "store_unavailable", mode);
    assert.equal(e.httpStatus, 503);
    assert.equal(e.public.code, "unavailable");
    if (mode !== "answer") assert.ok(e.cause instanceof Error);
  }
  assert.equal(events.length, before);
  failing.fail = null;
  await verifier.verify("login", phone, sent.code);

  // Records that are not records.
  for (const loaded of [
    { record: new Uint8Array([9, 9, 9]), version: 1 },
    { record: "bytes", version: 1 },
    { record: new Uint8Array(4) },
    { record: new Uint8Array(1 << 20), version: 1 },
  ]) {
    const liar = { load: async () => loaded, compareAndSwap: async () => true };
    const v = new otp.Verifier(liar, new otp.KeyRing(1, secret()), new otp.Policy());
    const e = await rejection(v.verify("login", phone, "123456"));
    assert.equal(e.code, "store_unavailable");
    assert.doesNotMatch(e.message, /\d{6}/);
  }
  assert.equal(thrownCode(() => new otp.Verifier({ load() {} }, new otp.KeyRing(1, secret()), new otp.Policy())), "invalid_argument");
});

test("a store that always conflicts: contention after the retries", async () => {
  let tries = 0;
  const busy = { load: async () => null, compareAndSwap: async () => (tries++, false) };
  const v = new otp.Verifier(busy, new otp.KeyRing(1, secret()), new otp.Policy(), { maxRetries: 3 });
  const e = await rejection(v.start("login", otp.PhoneNumber.parse("07401 101801")));
  assert.equal(e.code, "contention");
  assert.equal(e.httpStatus, 503);
  assert.equal(tries, 4);
});

test("the clock: Date.now() by default, a Date or a number injected, nonsense refused", async () => {
  const phone = otp.PhoneNumber.parse("07401 101801");
  const keys = new otp.KeyRing(1, secret());
  const real = new otp.Verifier(new otp.MemoryStore(), keys, new otp.Policy());
  const before = Date.now();
  const sent = await real.start("login", phone);
  // Stored instants are whole seconds: within a second of ten minutes on.
  assert.ok(sent.expiresAt.getTime() >= before + 599_000);
  assert.ok(sent.expiresAt.getTime() <= Date.now() + 601_000);
  const dated = new otp.Verifier(new otp.MemoryStore(), keys, new otp.Policy(), { clock: () => new Date(START) });
  assert.equal((await dated.start("login", phone)).expiresAt.getTime(), START + 600_000);
  for (const bad of [() => NaN, () => Infinity, () => "now", () => 1e300, () => new Date(NaN), () => { throw new Error("x"); }]) {
    const v = new otp.Verifier(new otp.MemoryStore(), keys, new otp.Policy(), { clock: bad });
    const e = await rejection(v.start("login", phone));
    assert.equal(e.code, "invalid_clock");
  }
  assert.equal(thrownCode(() => new otp.Verifier(new otp.MemoryStore(), keys, new otp.Policy(), { clock: 5 })), "invalid_argument");
  assert.equal(thrownCode(() => new otp.Verifier(new otp.MemoryStore(), keys, new otp.Policy(), { maxRetries: 1.5 })), "invalid_argument");
});

test("MemoryStore keeps the store contract and purges expired records", async () => {
  const store = new otp.MemoryStore();
  const bytes = new Uint8Array([1, 2, 3]);
  assert.equal(await store.load("k"), null);
  assert.equal(await store.compareAndSwap("k", 7, bytes, 10), false);
  assert.equal(await store.compareAndSwap("k", null, bytes, 10), true);
  const first = await store.load("k");
  assert.deepEqual([...first.record], [1, 2, 3]);
  assert.equal(await store.compareAndSwap("k", null, bytes, 10), false);
  assert.equal(await store.compareAndSwap("k", first.version, new Uint8Array([4]), 20), true);
  assert.equal(await store.compareAndSwap("k", first.version, bytes, 20), false);
  const second = await store.load("k");
  assert.notEqual(second.version, first.version);
  assert.equal(store.size, 1);
  assert.equal(store.purgeExpired(19), 0);
  assert.equal(store.purgeExpired(20), 1);
  assert.equal(store.size, 0);
  // A record written by the verifier lives until its expiresAt.
  const { verifier, phone } = setup({ store });
  await verifier.start("login", phone);
  assert.equal(store.purgeExpired(START + 1000), 0);
  assert.equal(store.purgeExpired(START + 2 * 86_400_000), 1);
});

test("policies: the builder, its getters, and nonsense refused naming the setting", () => {
  const p = otp.Policy.builder().codeLength(8).codeLifetime(300).maxChecks(3).build();
  assert.equal(p.codeLength, 8);
  assert.equal(p.codeLifetime, 300);
  assert.equal(p.maxChecks, 3);
  assert.equal(p.resendMode, "same_code");
  const d = new otp.Policy();
  assert.deepEqual(
    [d.codeLength, d.codeLifetime, d.maxChecks, d.maxSends, d.resendCooldown, d.failureCap, d.lockout],
    [6, 600, 5, 5, 30, 20, 3600],
  );
  const b = otp.Policy.builder();
  b.codeLength(3);
  assert.equal(b.build().codeLength, 6, "setters return a new builder");
  for (const [make, setting] of [
    [() => b.codeLength(3), "codeLength"],
    [() => b.codeLength(6.5), "codeLength"],
    [() => b.codeLifetime(NaN), "codeLifetime"],
    [() => b.codeLifetime(86_401), "codeLifetime"],
    [() => b.maxChecks(-1), "maxChecks"],
    [() => b.maxSends(2 ** 40), "maxSends"],
    [() => b.resendMode("sometimes"), "resendMode"],
    [() => b.resendCooldown(Infinity), "resendCooldown"],
  ]) {
    const e = thrownError(() => make().build());
    assert.equal(e.code, "invalid_policy");
    assert.equal(e.setting, setting);
  }
});

test("key rings: lengths and ids are checked; generate draws a key", () => {
  for (const [make, code] of [
    [() => new otp.KeyRing(1, new Uint8Array(31)), "invalid_key"],
    [() => new otp.KeyRing(1, new Uint8Array(65)), "invalid_key"],
    [() => new otp.KeyRing(1, "a secret"), "invalid_argument"],
    [() => new otp.KeyRing(-1, secret()), "invalid_argument"],
    [() => new otp.KeyRing(2 ** 32, secret()), "invalid_argument"],
    [() => new otp.KeyRing(1, secret()).remove(1), "invalid_key"],
  ]) {
    assert.equal(thrownCode(make), code);
  }
  assert.equal(new otp.KeyRing(7, Buffer.alloc(64, 1)).currentId, 7);
  assert.equal(otp.KeyRing.generate(3).currentId, 3);
});

function thrownError(f) {
  try {
    f();
  } catch (e) {
    return e;
  }
  assert.fail("expected an exception");
}

function thrownCode(f) {
  return thrownError(f).code;
}

test("a non-geographic number a phone policy admits runs the life cycle", async () => {
  const policy = new otp.PhonePolicy().allowOnly([800]).requireMobile(false);
  const phone = policy.parse("+800 1234 5678");
  assert.equal(phone.e164, "+80012345678");
  const { verifier, events } = setup();
  const sent = await verifier.start("login", phone);
  assert.equal(events.at(-1).phone, "+80012345678");
  const done = await verifier.verify("login", phone, sent.code);
  assert.equal(done.generation, 1);
});

test("budget labels are checked by the module: a bad one is an argument error, nothing spent", async () => {
  const policy = otp.Policy.builder().budgetRate("label", 1, 60).build();
  const { verifier, store, phone } = setup({ store: new AsyncMapStore(), policy });
  for (const labels of [["Session 7"], [""], ["x".repeat(33)], [7], "s"]) {
    const e = await rejection(verifier.startWithin({ labels }, "login", phone));
    assert.equal(e.code, "invalid_argument", JSON.stringify(labels));
    assert.equal(e.argument, "budgets.labels");
  }
  assert.equal(store.loads, 0, "refused before any load");
  await verifier.startWithin({ labels: ["api-client-7"] }, "login", phone);
  const spent = await rejection(verifier.startWithin({ labels: ["api-client-7"] }, "login", otp.PhoneNumber.parse("07401 101802")));
  assert.equal(spent.code, "budget_exhausted");
  assert.equal(spent.budget, "label");
});
