// Attack budgets (SMS pumping): startWithin / resendWithin spend from the
// budget keys a call names (an address, the number's range, its country, a
// global key, labels), each at the policy's rate; the N+1th send a key has
// no room for is refused with budget_exhausted and spends nothing; the deny
// rules refuse a range outright.
import { test } from "node:test";
import assert from "node:assert/strict";
import { otp, setup, rejection, thrown, AsyncMapStore } from "./support.mjs";

/** Distinct UK mobiles (both builds parse them): 07401 101801, 802, ... */
const mobile = (i) => otp.PhoneNumber.parse(`07401 1018${String(i).padStart(2, "0")}`);

for (const [name, makeStore] of [
  ["MemoryStore", () => new otp.MemoryStore()],
  ["async store object", () => new AsyncMapStore()],
]) {
  test(`an address budget refuses the N+1th start from one address (${name})`, async () => {
    const policy = otp.Policy.builder().budgetRate("address", 3, 600).build();
    const { verifier, store, clock, events } = setup({ store: makeStore(), policy });
    const from = { address: "203.0.113.7" };
    for (let i = 1; i <= 3; i++) {
      const sent = await verifier.startWithin(from, "login", mobile(i));
      assert.match(sent.code, /^\d{6}$/);
    }
    const sentEvents = events.length;
    assert.equal(sentEvents, 3);

    const refused = await rejection(verifier.startWithin(from, "login", mobile(4)));
    assert.equal(refused.name, "OtpflowError");
    assert.equal(refused.code, "budget_exhausted");
    assert.equal(refused.httpStatus, 429);
    assert.equal(refused.budget, "address");
    assert.ok(refused.retryAfter > 0 && refused.retryAfter <= 600, `retryAfter ${refused.retryAfter}`);
    assert.equal(refused.public.code, "too_many_requests");
    assert.equal(refused.public.budget, undefined, "the public form does not name the budget");
    assert.ok(!refused.message.includes("203.0.113.7"), "the message names no address");
    // The refused send wrote no validation and sent nothing.
    assert.equal((await rejection(verifier.status("login", mobile(4)))).code, "validation_not_found");
    assert.deepEqual(events.slice(sentEvents).map((e) => [e.type, e.budget, e.phone]), [
      ["budgetRefused", "address", "+447401101804"],
    ]);
    assert.equal(events.at(-1).retryAfter, refused.retryAfter);

    // Another address, and the same address without budgets, are not this key.
    await verifier.startWithin({ address: "198.51.100.1" }, "login", mobile(4));
    await verifier.start("login", mobile(5));
    // An IPv6 client counts by its /64.
    const v6 = ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::9"];
    for (const [i, address] of v6.entries()) {
      await verifier.startWithin({ address }, "signup", mobile(10 + i));
    }
    const walk = await rejection(verifier.startWithin({ address: "2001:db8:1:2::77" }, "signup", mobile(13)));
    assert.equal(walk.code, "budget_exhausted");

    // Once the key allows a send again, it goes through.
    clock.advance(refused.retryAfter);
    await verifier.startWithin(from, "login", mobile(6));
    assert.equal((await verifier.status("login", mobile(6))).state, "sent");
    if (store instanceof AsyncMapStore) {
      assert.ok([...store.map.keys()].some((k) => k.startsWith("#budget/address:")));
    }
  });
}

test("a range budget counts every number of one range, from any address", async () => {
  const policy = otp.Policy.builder().budgetRate("range", 2, 60).rangePrefix(8).build();
  assert.equal(policy.rangePrefix, 8);
  const { verifier } = setup({ policy });
  await verifier.startWithin({ range: true, address: "192.0.2.1" }, "login", mobile(1));
  await verifier.startWithin({ range: true, address: "192.0.2.2" }, "login", mobile(2));
  const refused = await rejection(verifier.startWithin({ range: true, address: "192.0.2.3" }, "login", mobile(3)));
  assert.equal(refused.code, "budget_exhausted");
  assert.equal(refused.budget, "range");
  // A number of another range is another key.
  await verifier.startWithin({ range: true }, "login", otp.PhoneNumber.parse("07911 123456"));
});

test("a refusal by one key spends nothing from the others", async () => {
  const policy = otp.Policy.builder().budgetRate("address", 2, 600).budgetRate("global", 1, 600).build();
  const { verifier } = setup({ policy });
  await verifier.startWithin({ address: "203.0.113.9", global: true }, "login", mobile(1));
  // The global key is spent: the address keeps its place.
  const refused = await rejection(verifier.startWithin({ address: "203.0.113.9", global: true }, "login", mobile(2)));
  assert.equal(refused.budget, "global");
  await verifier.startWithin({ address: "203.0.113.9" }, "login", mobile(3));
  const now = await rejection(verifier.startWithin({ address: "203.0.113.9" }, "login", mobile(4)));
  assert.equal(now.budget, "address", "two sends spent the address's two places");
});

test("a send that does not happen spends nothing; resendWithin spends like startWithin", async () => {
  const policy = otp.Policy.builder().budgetRate("label", 2, 600).build();
  const { verifier, clock } = setup({ policy });
  const budgets = { labels: ["api-client-7"] };
  await verifier.startWithin(budgets, "login", mobile(1));
  // Too soon: refused by the subject, no budget spent.
  const soon = await rejection(verifier.resendWithin(budgets, "login", mobile(1)));
  assert.equal(soon.code, "resend_too_soon");
  clock.advance(30);
  const resent = await verifier.resendWithin(budgets, "login", mobile(1));
  assert.equal(resent.resent, true);
  const refused = await rejection(verifier.startWithin(budgets, "login", mobile(2)));
  assert.equal(refused.code, "budget_exhausted");
  assert.equal(refused.budget, "label");
});

test("deny rules refuse a range whatever the budgets", async () => {
  const policy = otp.Policy.builder().denyPrefix("4474011").build();
  assert.deepEqual(policy.deniedPrefixes, ["4474011"]);
  const { verifier, events } = setup({ policy });
  for (const call of [
    () => verifier.start("login", mobile(1)),
    () => verifier.startWithin({ address: "203.0.113.7" }, "login", mobile(1)),
  ]) {
    const denied = await rejection(call());
    assert.equal(denied.code, "destination_denied");
    assert.equal(denied.httpStatus, 403);
    assert.equal(denied.public.code, "invalid_request");
  }
  assert.equal(events.length, 0);
  await verifier.start("login", otp.PhoneNumber.parse("07911 123456"));
});

test("budget rates in the policy, and bad budgets refused as arguments", async () => {
  const defaults = new otp.Policy();
  assert.deepEqual(defaults.budgetRate("address"), { burst: 10, interval: 360 });
  assert.deepEqual(defaults.budgetRate("range"), { burst: 20, interval: 180 });
  assert.equal(defaults.budgetRate("global"), null);
  assert.equal(thrown(() => defaults.budgetRate("planet")).code, "invalid_argument");
  const off = otp.Policy.builder().budgetRate("address", null).build();
  assert.equal(off.budgetRate("address"), null);
  for (const bad of [
    () => otp.Policy.builder().budgetRate("planet", 1, 1).build(),
    () => otp.Policy.builder().budgetRate("global", 0, 60).build(),
    () => otp.Policy.builder().budgetRate("global", 1.5, 60).build(),
    () => otp.Policy.builder().budgetRate("global", 5).build(),
    () => otp.Policy.builder().budgetRate("global", 5, -1).build(),
  ]) {
    const e = thrown(bad);
    assert.equal(e.code, "invalid_policy");
    assert.equal(e.setting, "budgetRate");
  }
  assert.equal(thrown(() => otp.Policy.builder().rangePrefix(1).build()).code, "invalid_policy");
  assert.equal(thrown(() => otp.Policy.builder().denyPrefix("+44").build()).code, "invalid_policy");

  const { verifier, store } = setup();
  for (const budgets of [
    "203.0.113.7",
    { address: "not an address" },
    { address: 7 },
    { range: "yes" },
    { labels: "api" },
    { labels: ["Not A Label"] },
    { labels: Array.from({ length: 33 }, (_, i) => `l${i}`) },
  ]) {
    const e = await rejection(verifier.startWithin(budgets, "login", mobile(1)));
    assert.equal(e.code, "invalid_argument", JSON.stringify(budgets));
    assert.equal(e.public.code, "invalid_request");
  }
  assert.equal(store.size, 0, "nothing was written");
  // No budgets at all: a plain start.
  await verifier.startWithin(null, "login", mobile(1));
});
