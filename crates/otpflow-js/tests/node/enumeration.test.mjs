// The public form of every refusal that would tell an outsider whether a
// validation exists, or in what state, is one and the same answer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { otp, setup, wrong, rejection } from "./support.mjs";

const INVALID = { code: "invalid_code", httpStatus: 403, retryAfter: null, message: "invalid code" };

test("not found, wrong, expired, validated, canceled and spent look the same from outside", async () => {
  const { verifier, clock, phone } = setup();
  const seen = new Map();
  const record = async (name, promise) => {
    const e = await rejection(promise);
    seen.set(name, e.code);
    assert.deepEqual(e.public, INVALID, name);
  };

  await record("not found", verifier.verify("login", phone, "123456"));
  let sent = await verifier.start("login", phone);
  await record("wrong", verifier.verify("login", phone, wrong(sent.code)));
  clock.advance(600);
  await record("expired", verifier.verify("login", phone, sent.code));
  sent = await verifier.start("login", phone);
  await verifier.verify("login", phone, sent.code);
  await record("validated", verifier.verify("login", phone, sent.code));
  sent = await verifier.start("login", phone);
  await verifier.cancel("login", phone);
  await record("canceled", verifier.verify("login", phone, sent.code));
  clock.advance(60);
  sent = await verifier.start("login", phone);
  for (let i = 0; i < 5; i++) await rejection(verifier.verify("login", phone, wrong(sent.code)));
  await record("spent", verifier.verify("login", phone, sent.code));

  // The service's own codes differ; the public ones do not.
  assert.deepEqual([...seen.values()], [
    "validation_not_found",
    "code_mismatch",
    "validation_expired",
    "already_validated",
    "validation_canceled",
    "max_attempts_reached",
  ]);
});

test("a locked subject answers too_many_requests; an unknown subject never does", async () => {
  const policy = otp.Policy.builder().failureCap(2).build();
  const { verifier, phone } = setup({ policy });
  const sent = await verifier.start("login", phone);
  await rejection(verifier.verify("login", phone, wrong(sent.code)));
  const locked = await rejection(verifier.verify("login", phone, wrong(sent.code)));
  assert.equal(locked.public.code, "too_many_requests");
  assert.equal(locked.public.httpStatus, 429);
  assert.equal(locked.public.retryAfter, 3600);
  const stranger = otp.PhoneNumber.parse("+44 7700 900999");
  for (let i = 0; i < 10; i++) {
    const e = await rejection(verifier.verify("login", stranger, "123456"));
    assert.deepEqual(e.public, INVALID);
  }
});

test("messages hold no code, key or number", async () => {
  const { verifier, phone } = setup();
  const sent = await verifier.start("login", phone);
  const errors = [
    await rejection(verifier.verify("login", phone, wrong(sent.code))),
    await rejection(verifier.resend("login", phone)),
    await rejection(verifier.verify("login", otp.PhoneNumber.parse("+44 7700 900999"), sent.code)),
  ];
  for (const e of errors) {
    for (const text of [e.message, e.public.message, JSON.stringify(e.public)]) {
      assert.ok(!text.includes(sent.code), text);
      assert.ok(!text.includes("7401101801"), text);
      assert.ok(!text.includes("7700900999"), text);
    }
  }
});
