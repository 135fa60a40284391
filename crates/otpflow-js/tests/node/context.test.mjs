// Binding a code to what it approves (a payment, a session): a code sent
// under a context validates only when the check names the same context;
// another context, or none, is a wrong code that spends an attempt.
import { test } from "node:test";
import assert from "node:assert/strict";
import { otp, setup, rejection } from "./support.mjs";

test("a context mismatch fails as a wrong code; the same context validates", async () => {
  const { verifier, events, phone } = setup();
  const payment = { amount: "12.50 EUR", payee: "ACME Ltd" };
  const sent = await verifier.start("payment", phone, "sms", payment);

  const relayed = await rejection(
    verifier.verify("payment", phone, sent.code, { amount: "12.50 EUR", payee: "Mallory" }),
  );
  assert.equal(relayed.code, "code_mismatch");
  assert.equal(relayed.attemptsLeft, 4);
  assert.equal(relayed.public.code, "invalid_code");
  assert.equal(events.at(-1).type, "checkFailed");

  const unbound = await rejection(verifier.verify("payment", phone, sent.code));
  assert.equal(unbound.code, "code_mismatch");
  assert.equal(unbound.attemptsLeft, 3);

  // The fields in another order are the same context.
  const done = await verifier.verify("payment", phone, sent.code, { payee: "ACME Ltd", amount: "12.50 EUR" });
  assert.equal(done.generation, 1);
});

test("an unbound code checked under a context is a wrong code", async () => {
  const { verifier, phone } = setup();
  const sent = await verifier.start("login", phone);
  const e = await rejection(verifier.verify("login", phone, sent.code, { session: "s-1" }));
  assert.equal(e.code, "code_mismatch");
  await verifier.verify("login", phone, sent.code, null);
});

test("a resend under the same context sends the same code; under another, that context's code", async () => {
  const { verifier, clock, phone } = setup();
  const session = { session: "checkout-77" };
  const sent = await verifier.start("checkout", phone, undefined, session);
  clock.advance(30);
  const same = await verifier.resend("checkout", phone, undefined, session);
  assert.equal(same.code, sent.code);
  assert.equal(same.newCode, false);
  clock.advance(30);
  // The record holds nothing of the context: the code sent is the one
  // derived for the context named, and only that context validates it.
  const other = await verifier.resendWithin({}, "checkout", phone, undefined, { session: "checkout-78" });
  await verifier.verify("checkout", phone, other.code, { session: "checkout-78" });
});

test("a context that is not an object of strings is refused as an argument", async () => {
  const { verifier, store, phone } = setup();
  for (const context of [
    "s-1",
    7,
    ["a", "b"],
    { amount: 12.5 },
    { session: "x".repeat(1025) },
    Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`f${i}`, "v"])),
  ]) {
    const e = await rejection(verifier.start("login", phone, "sms", context));
    assert.equal(e.code, "invalid_argument");
    assert.equal(e.argument, "context");
  }
  assert.equal(store.size, 0);
});
