// The browser suite's bodies (tests/browser.rs runs each as a
// wasm-bindgen-test in headless Chromium): the package's JavaScript layer
// (package/api.js, bound by the Rust side) over the test's own module,
// with the browser's crypto.getRandomValues, Date.now() and event loop.
// Each case throws on a failure.

/** The test module's glue: the runner serves it at /wasm-bindgen-test, and
 * an ES module is loaded once, so this is the instance already running. */
export async function glue() {
  return await import("/wasm-bindgen-test");
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

function equal(actual, expected, what) {
  check(actual === expected, `${what}: ${JSON.stringify(actual)} !== ${JSON.stringify(expected)}`);
}

async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error("check failed: expected a rejection");
}

const wrong = (code) => (code[0] === "0" ? "1" : "0") + code.slice(1);

function verifier(otp, options) {
  return new otp.Verifier(new otp.MemoryStore(), otp.KeyRing.generate(1), new otp.Policy(), options);
}

const cases = {
  runsInABrowser(otp) {
    check(typeof window === "object" && typeof document === "object", "a browser window");
    check(typeof crypto.getRandomValues === "function", "crypto.getRandomValues");
    equal(otp.buildFlavor(), "slim", "the flavor");
  },

  async lifecycle(otp) {
    const events = [];
    const v = verifier(otp, { onEvent: (e) => events.push(e) });
    const phone = otp.PhoneNumber.parse("07401 101801");
    const sent = await v.start("login", phone);
    check(/^\d{6}$/.test(sent.code), "six digits");
    // Date.now() is the default clock: the code expires ten minutes from
    // now (an expiry is rounded up to the whole second).
    const fromNow = sent.expiresAt.getTime() - Date.now();
    check(fromNow >= 590_000 && fromNow <= 601_000, `expiry ${fromNow}`);
    equal(events.length, 1, "one event");
    equal(events[0].type, "sent", "the event");
    equal(events[0].code, sent.code, "the event's code");

    const miss = await rejection(v.verify("login", phone, wrong(sent.code)));
    check(miss instanceof Error, "an Error");
    equal(miss.name, "OtpflowError", "its name");
    equal(miss.code, "code_mismatch", "its code");
    equal(miss.attemptsLeft, 4, "attempts left");
    equal(miss.public.code, "invalid_code", "the public code");
    check(!miss.message.includes(sent.code), "the message holds no code");

    const done = await v.verify("login", phone, sent.code);
    equal(done.generation, 1, "the generation");
    const again = await rejection(v.verify("login", phone, sent.code));
    equal(again.code, "already_validated", "a second verify");
    equal((await v.status("login", phone)).state, "validated", "the state");
  },

  async twoConcurrentVerifies(otp) {
    const v = verifier(otp);
    const phone = otp.PhoneNumber.parse("+44 7401 101801");
    const sent = await v.start("login", phone);
    const results = await Promise.allSettled([
      v.verify("login", phone, sent.code),
      v.verify("login", phone, sent.code),
    ]);
    equal(results.filter((r) => r.status === "fulfilled").length, 1, "exactly one succeeds");
    equal(results.find((r) => r.status === "rejected").reason.code, "already_validated", "the other");
  },

  async codesAreRandom(otp) {
    const v = verifier(otp);
    const codes = new Set();
    for (let i = 0; i < 20; i++) {
      const phone = otp.PhoneNumber.parse(`+44 7401 1019${String(i).padStart(2, "0")}`);
      codes.add((await v.start("login", phone)).code);
    }
    // Twenty draws of six random digits all equal: probability 10^-114.
    check(codes.size > 1, "codes differ");
  },

  phoneErrors(otp) {
    let error;
    try {
      otp.PhoneNumber.parse("07401 1O18O1");
    } catch (e) {
      error = e;
    }
    check(error instanceof Error, "an Error");
    equal(error.code, "phone_invalid_character", "the code");
    equal(error.character, "O", "the character");
    equal(error.position, 7, "the position");
    try {
      otp.PhonePolicy.ukOnly().parse("+1 202 555 0123");
      error = undefined;
    } catch (e) {
      error = e;
    }
    equal(error.code, "phone_country_not_allowed", "not UK");
    equal(error.countryCode, 1, "its country code");
    const split = otp.PhoneNumber.fromParts("+44", "07401 101801");
    check(split.equals(otp.PhoneNumber.parse("07401101801")), "the split form");
    equal(String(split), "+44 7401 ••• 801", "the masked form");
  },

  async budgets(otp) {
    const policy = otp.Policy.builder().budgetRate("address", 2, 600).build();
    const rate = policy.budgetRate("address");
    equal(rate.burst, 2, "the burst");
    equal(rate.interval, 600, "the interval");
    // Records keep whole seconds: a clock of whole seconds makes the burst exact.
    const v = new otp.Verifier(new otp.MemoryStore(), otp.KeyRing.generate(1), policy, {
      clock: () => Math.floor(Date.now() / 1000) * 1000,
    });
    const from = { address: "203.0.113.7" };
    for (let i = 1; i <= 2; i++) {
      await v.startWithin(from, "login", otp.PhoneNumber.parse(`07401 1018${String(i).padStart(2, "0")}`));
    }
    const third = otp.PhoneNumber.parse("07401 101803");
    const refused = await rejection(v.startWithin(from, "login", third));
    equal(refused.code, "budget_exhausted", "the code");
    equal(refused.budget, "address", "the budget");
    equal(refused.httpStatus, 429, "the status");
    check(refused.retryAfter > 0 && refused.retryAfter <= 600, "a retry hint");
    equal(refused.public.code, "too_many_requests", "the public code");
    equal(refused.public.budget, undefined, "the public form names no budget");
    equal((await rejection(v.status("login", third))).code, "validation_not_found", "nothing written");
    await v.startWithin({ address: "2001:db8::1" }, "login", third);
    equal((await rejection(v.startWithin({ address: "not an address" }, "login", third))).code, "invalid_argument", "a bad address");
  },

  async context(otp) {
    const v = verifier(otp);
    const phone = otp.PhoneNumber.parse("07401 101801");
    const sent = await v.start("payment", phone, undefined, { amount: "12.50 EUR", payee: "ACME Ltd" });
    const miss = await rejection(v.verify("payment", phone, sent.code, { amount: "12.50 EUR", payee: "Mallory" }));
    equal(miss.code, "code_mismatch", "another payee");
    equal((await rejection(v.verify("payment", phone, sent.code))).code, "code_mismatch", "no context");
    const done = await v.verify("payment", phone, sent.code, { payee: "ACME Ltd", amount: "12.50 EUR" });
    equal(done.generation, 1, "the same context, reordered");
    equal((await rejection(v.verify("payment", phone, sent.code, 7))).code, "invalid_argument", "not a context");
  },
};

/** Runs one case against the bound API. */
export async function run(name, otp) {
  await cases[name](otp);
}
