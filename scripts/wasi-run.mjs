// Runs a wasm32-wasip1 program (a test binary cargo built) under Node's WASI,
// so `cargo test --target wasm32-wasip1` works with no other runtime.
// Cargo calls it as the target's runner: node scripts/wasi-run.mjs app.wasm [args…]
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, env, exit } from "node:process";

const [wasmPath, ...args] = argv.slice(2);
if (!wasmPath) {
  console.error("usage: node scripts/wasi-run.mjs program.wasm [args…]");
  exit(2);
}

const wasi = new WASI({
  version: "preview1",
  args: [wasmPath, ...args],
  env,
  preopens: { ".": "." },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(wasmPath));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance) ?? 0);
