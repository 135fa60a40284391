#!/usr/bin/env -S node --no-warnings --single-threaded
// Runs a wasm32-wasip1 program (a test binary cargo built) under Node's WASI
// (preview1), so `cargo test --target wasm32-wasip1` needs no other runtime.
// Cargo calls it as the target's runner (.cargo/config.toml):
//   scripts/wasi-run.mjs program.wasm [args…]
// The program gets the arguments, the environment and the current directory
// (preopened as "."); its exit code is ours. A trap (a panic aborts on
// wasm32-wasip1) exits with 134, as SIGABRT would.
// `--single-threaded`: node 20 with V8's background threads crashed (SIGSEGV)
// on about half the exits of the library's test binary after every test had
// passed (40 runs here, and CI's stop 17); with no V8 worker threads 16 of 16
// runs of each binary exit 0.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, env, exit } from "node:process";

const [wasmPath, ...args] = argv.slice(2);
if (!wasmPath) {
  console.error("usage: scripts/wasi-run.mjs program.wasm [args…]");
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
let code;
try {
  code = wasi.start(instance) ?? 0;
} catch (e) {
  if (!(e instanceof WebAssembly.RuntimeError)) throw e;
  console.error(`wasm trap in ${wasmPath}: ${e.message}`);
  code = 134;
}
exit(code);
