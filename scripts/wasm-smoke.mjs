// Loads the otpflow-wasm module (wasm32-unknown-unknown) the way a wasm host
// would and takes one number from start to a refused reuse.
// Usage: node scripts/wasm-smoke.mjs path/to/otpflow_wasm.wasm
import { readFile } from "node:fs/promises";
import assert from "node:assert/strict";
import { argv } from "node:process";

const { instance } = await WebAssembly.instantiate(await readFile(argv[2]), {});
const m = instance.exports;
const enc = new TextEncoder();
const dec = new TextDecoder();

const write = (bytes) => new Uint8Array(m.memory.buffer, m.otpflow_input(), bytes.length).set(bytes);
const read = () => dec.decode(new Uint8Array(m.memory.buffer, m.otpflow_output(), m.otpflow_output_len()));
const call = (f, ...args) => ({ status: f(...args), out: read() });

const now = 1795348800n; // 2026-11-22T12:00:00Z
const key = new Uint8Array(32).fill(42);
const seed = new Uint8Array(32).fill(7);
write(new Uint8Array([...key, ...seed]));
assert.equal(call(m.otpflow_init, 32, 1, now).status, 0);

const phone = enc.encode("07401 101801");
write(phone);
assert.deepEqual(call(m.otpflow_phone, phone.length), { status: 0, out: "+447401101801" });
const bad = enc.encode("07401 1O18O1");
write(bad);
assert.deepEqual(call(m.otpflow_phone, bad.length), { status: -2, out: "phone_invalid_character" });

write(phone);
const sent = call(m.otpflow_start, phone.length, now);
assert.equal(sent.status, 0);
assert.match(sent.out, /^\d{6}$/);

const verify = (code, at) => {
  const c = enc.encode(code);
  write(new Uint8Array([...phone, ...c]));
  return call(m.otpflow_verify, phone.length, c.length, at);
};
const wrong = sent.out === "000000" ? "111111" : "000000";
assert.deepEqual(verify(wrong, now + 5n), { status: -3, out: "invalid_code" });
assert.deepEqual(verify(sent.out, now + 10n), { status: 0, out: "validated" });
assert.deepEqual(verify(sent.out, now + 15n), { status: -3, out: "invalid_code" });
console.log(`wasm smoke: ok (${argv[2]})`);
