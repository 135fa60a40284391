// otpflow for browsers, edge functions and bundlers: `await init()` (or
// `init(urlOrBytesOfTheWasm)`) once, then use the classes.
import glueInit, * as glue from "./otpflow_glue.js";
import { bind } from "./api.js";

export let OtpflowError;
export let PhoneNumber;
export let PhonePolicy;
export let Policy;
export let PolicyBuilder;
export let KeyRing;
export let MemoryStore;
export let Verifier;
export let buildFlavor;

let bound;

/**
 * Loads the module (by default `otpflow_glue_bg.wasm` beside this file)
 * and binds the API; later calls do nothing.
 */
export default async function init(moduleOrPath) {
  if (bound) return;
  await glueInit(moduleOrPath === undefined ? undefined : { module_or_path: moduleOrPath });
  bound = bind(glue);
  ({ OtpflowError, PhoneNumber, PhonePolicy, Policy, PolicyBuilder, KeyRing, MemoryStore, Verifier, buildFlavor } =
    bound);
}
