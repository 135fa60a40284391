// Concurrent calls through an async store: every state change is one
// compare-and-swap, so one code validates once and no check runs past the
// budget, however the calls interleave.
import { test } from "node:test";
import assert from "node:assert/strict";
import { otp, setup, wrong, AsyncMapStore } from "./support.mjs";

test("two concurrent verifies of one code: exactly one succeeds", async () => {
  for (let round = 0; round < 20; round++) {
    const store = new AsyncMapStore();
    const { verifier, events, phone } = setup({ store });
    const sent = await verifier.start("login", phone);
    // Both loads are held until both are waiting: both read the same version.
    store.holdLoads(2);
    const results = await Promise.allSettled([
      verifier.verify("login", phone, sent.code),
      verifier.verify("login", phone, sent.code),
    ]);
    const ok = results.filter((r) => r.status === "fulfilled");
    const refused = results.filter((r) => r.status === "rejected");
    assert.equal(ok.length, 1, "exactly one verify succeeds");
    assert.equal(refused.length, 1);
    assert.equal(refused[0].reason.code, "already_validated");
    assert.equal(refused[0].reason.public.code, "invalid_code");
    assert.ok(store.conflicts >= 1, "the race was real: a compare-and-swap lost");
    assert.equal(events.filter((e) => e.type === "validated").length, 1);
  }
});

test("concurrent wrong guesses never spend more checks than the budget", async () => {
  const store = new AsyncMapStore();
  const { verifier, phone } = setup({ store });
  const sent = await verifier.start("login", phone);
  const guesses = 12;
  store.holdLoads(guesses);
  const results = await Promise.allSettled(
    Array.from({ length: guesses }, () => verifier.verify("login", phone, wrong(sent.code))),
  );
  const codes = results.map((r) => r.reason.code);
  const mismatches = codes.filter((c) => c === "code_mismatch").length;
  assert.equal(mismatches, 4, codes.join(","));
  assert.equal(codes.filter((c) => c === "max_attempts_reached").length, guesses - 4);
  const status = await verifier.status("login", phone);
  assert.equal(status.state, "locked");
  assert.equal(status.attemptsLeft, 0);
  // The right code is refused once the budget is spent.
  await assert.rejects(verifier.verify("login", phone, sent.code), { code: "max_attempts_reached" });
});

test("concurrent starts make one validation, and concurrent subjects do not interfere", async () => {
  const store = new AsyncMapStore();
  const { verifier, events, phone } = setup({ store });
  store.holdLoads(2);
  const results = await Promise.allSettled([verifier.start("login", phone), verifier.start("login", phone)]);
  const ok = results.filter((r) => r.status === "fulfilled");
  assert.equal(ok.length, 1, "one start wins");
  assert.equal(ok[0].value.generation, 1);
  // The other found the winner's validation live and was a resend, too soon.
  const refused = results.find((r) => r.status === "rejected").reason;
  assert.equal(refused.code, "resend_too_soon");
  assert.equal(events.filter((e) => e.type === "sent").length, 1, "one code went out");
  await verifier.verify("login", phone, ok[0].value.code);

  const phones = ["+44 7700 900001", "+44 7700 900002", "+44 7700 900003"].map((p) => otp.PhoneNumber.parse(p));
  const sent = await Promise.all(phones.map((p) => verifier.start("login", p)));
  const done = await Promise.all(phones.map((p, i) => verifier.verify("login", p, sent[i].code)));
  assert.deepEqual(done.map((d) => d.generation), [1, 1, 1]);
});
