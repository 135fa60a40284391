// otpflow for node: loads the module synchronously from beside this file
// and binds the API (api.js) to it.
import { readFileSync } from "node:fs";
import * as glue from "./otpflow_glue.js";
import { bind } from "./api.js";

glue.initSync({ module: readFileSync(new URL("./otpflow_glue_bg.wasm", import.meta.url)) });

export const {
  OtpflowError,
  PhoneNumber,
  PhonePolicy,
  Policy,
  PolicyBuilder,
  KeyRing,
  MemoryStore,
  Verifier,
  buildFlavor,
} = bind(glue);
