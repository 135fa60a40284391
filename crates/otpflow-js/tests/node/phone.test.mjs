// Phone numbers through the package: every accepted form to one E.164
// value, the guard's refusals with the fields that say what is wrong, and
// policies. Runs on both builds; where the slim build differs, it says so.
import { test } from "node:test";
import assert from "node:assert/strict";
import { otp, flavor, thrown } from "./support.mjs";

const { PhoneNumber, PhonePolicy } = otp;

test("every way of writing a UK mobile is the same number", () => {
  const forms = [
    "07401 101801",
    "07401101801",
    " 07401-101-801 ",
    "+44 7401 101801",
    "+44 (0)7401 101801",
    "+44-7401-101801",
    "0044 7401 101801",
    "447401101801",
    "(07401) 101.801",
  ];
  for (const form of forms) {
    const n = PhoneNumber.parse(form);
    assert.equal(n.e164, "+447401101801", form);
    assert.equal(n.digits, "447401101801");
    assert.equal(n.countryCode, 44);
    assert.equal(n.national, "7401101801");
    assert.equal(n.region, "GB");
  }
  const split = PhoneNumber.fromParts("+44", "07401 101801");
  assert.ok(split.equals(PhoneNumber.parse(forms[0])));
  assert.ok(PhoneNumber.fromParts(" +44 ", "7401 101801").equals(split));
});

test("the Crown Dependencies share +44 and keep their region", () => {
  assert.equal(PhoneNumber.parse("07781 123456").region, "GG");
  assert.equal(PhoneNumber.parse("+44 7509 123456").region, "JE");
  assert.equal(PhoneNumber.parse("07624 123456").region, "IM");
});

test("the guard: letters, stray plus signs, empty and long input, with where and what", () => {
  const cases = [
    ["07401 1O18O1", { code: "phone_invalid_character", character: "O", position: 7 }],
    ["07401 101801x", { code: "phone_invalid_character", character: "x", position: 12 }],
    ["٠٧٤٠١١٠١٨٠١", { code: "phone_invalid_character", character: "٠", position: 0 }],
    ["0740\u0000101801", { code: "phone_invalid_character", character: "\u0000", position: 4 }],
    ["0740\uD800101801", { code: "phone_invalid_character", character: "\uFFFD", position: 4 }],
    ["+44 7401 +101801", { code: "phone_misplaced_plus", position: 9 }],
    ["", { code: "phone_empty" }],
    ["    ", { code: "phone_empty" }],
    ["0".repeat(65), { code: "phone_too_long", max: 64 }],
    ["0".repeat(1_000_000), { code: "phone_too_long", max: 64 }],
    ["+999 1234 5678", { code: "phone_unknown_country_code" }],
  ];
  for (const [input, want] of cases) {
    const e = thrown(() => PhoneNumber.parse(input));
    assert.equal(e.name, "OtpflowError");
    assert.equal(e.httpStatus, 400, input.slice(0, 20));
    for (const [field, value] of Object.entries(want)) {
      assert.equal(e[field], value, `${JSON.stringify(input.slice(0, 20))}: ${field}`);
      // The fields are about the caller's own input: the public form has them too.
      assert.equal(e.public[field], value, `public ${field}`);
    }
  }
  assert.equal(thrown(() => PhoneNumber.parse(447401101801)).code, "invalid_argument");
  assert.equal(thrown(() => PhoneNumber.parse(undefined)).code, "invalid_argument");
});

test("the split form names every missing part and checks the country code", () => {
  const missing = thrown(() => PhoneNumber.fromParts("", " "));
  assert.equal(missing.code, "phone_missing_field");
  assert.deepEqual(missing.missing, ["countryCode", "national"]);
  assert.deepEqual(missing.public.missing, ["countryCode", "national"]);
  assert.deepEqual(thrown(() => PhoneNumber.fromParts("+44", "")).missing, ["national"]);
  assert.deepEqual(thrown(() => PhoneNumber.fromParts("", "7401 101801")).missing, ["countryCode"]);
  for (const code of ["44", "+4444", "+4a", "++44", "x".repeat(5000)]) {
    assert.equal(thrown(() => PhoneNumber.fromParts(code, "7401 101801")).code, "phone_invalid_country_code", code.slice(0, 8));
  }
  assert.equal(thrown(() => PhoneNumber.fromParts("+0", "7401 101801")).code, "phone_unknown_country_code");
  assert.equal(thrown(() => PhoneNumber.fromParts("+44", "+7401 101801")).code, "phone_misplaced_plus");
  assert.equal(thrown(() => PhoneNumber.fromParts("+44", "0".repeat(100))).code, "phone_too_long");
});

test("landlines are refused unless the policy allows them", () => {
  const e = thrown(() => PhoneNumber.parse("020 7946 0000"));
  assert.equal(e.code, "phone_not_mobile");
  assert.equal(new PhonePolicy().requireMobile(false).parse("020 7946 0000").e164, "+442079460000");
  assert.equal(thrown(() => new PhonePolicy().requireMobile("no")).code, "invalid_argument");
});

test("policies: UK only, allowed countries, no national input, default region", () => {
  const uk = PhonePolicy.ukOnly();
  assert.deepEqual(Array.from(uk.allowedCountryCodes), [44]);
  const us = thrown(() => uk.parse("+1 202 555 0123"));
  assert.equal(us.code, "phone_country_not_allowed");
  assert.equal(us.countryCode, 1);
  assert.equal(uk.parse("07401 101801").e164, "+447401101801");
  assert.equal(thrown(() => uk.fromParts("+353", "85 123 4567")).code, "phone_country_not_allowed");

  const two = new PhonePolicy().allowOnly([353, 44, 44]);
  assert.deepEqual(Array.from(two.allowedCountryCodes), [44, 353]);
  assert.equal(new PhonePolicy().allowedCountryCodes, undefined);
  for (const bad of [["44"], [0], [1000], [4.4], "44", [NaN]]) {
    assert.equal(thrown(() => new PhonePolicy().allowOnly(bad)).code, "invalid_argument");
  }

  const strict = new PhonePolicy().withoutDefaultRegion();
  assert.equal(strict.defaultRegion, undefined);
  assert.equal(thrown(() => strict.parse("07401 101801")).code, "phone_missing_country_code");
  assert.equal(strict.parse("+44 7401 101801").e164, "+447401101801");
  assert.equal(new PhonePolicy().defaultRegion, "GB");
  assert.equal(new PhonePolicy().withDefaultRegion("je").defaultRegion, "JE");
  assert.equal(thrown(() => new PhonePolicy().withDefaultRegion("ZZ")).code, "phone_unknown_region");
  assert.equal(thrown(() => new PhonePolicy().withDefaultRegion(44)).code, "invalid_argument");
});

test("other countries: the full build validates them, the slim build checks their shape", () => {
  const fr = PhoneNumber.parse("+33 6 12 34 56 78");
  assert.equal(fr.e164, "+33612345678");
  assert.equal(fr.countryCode, 33);
  assert.equal(new PhonePolicy().requireMobile(false).fromParts("+507", "6123 4567").e164, "+50761234567");
  if (flavor === "full") {
    assert.equal(fr.region, "FR");
    assert.equal(new PhonePolicy().withDefaultRegion("FR").parse("06 12 34 56 78").e164, "+33612345678");
    // A French landline is not a mobile; a number too short for France is invalid.
    assert.equal(thrown(() => PhoneNumber.parse("+33 1 23 45 67 89")).code, "phone_not_mobile");
    assert.equal(thrown(() => PhoneNumber.parse("+33 6 12")).code, "phone_invalid");
  } else {
    assert.equal(flavor, "slim");
    assert.equal(fr.region, undefined);
    assert.equal(thrown(() => new PhonePolicy().withDefaultRegion("FR")).code, "phone_unknown_region");
    // The structural check: 4 to 14 national digits.
    assert.equal(thrown(() => PhoneNumber.parse("+33 612")).code, "phone_invalid");
  }
});
