#!/usr/bin/env -S node --no-warnings
// Runs a wasm32-wasip1 program (a test binary cargo built) under Node's WASI
// (preview1), so `cargo test --target wasm32-wasip1` needs no other runtime.
// Cargo calls it as the target's runner (.cargo/config.toml):
//   scripts/wasi-run.mjs program.wasm [args…]
// The program gets the arguments, the environment and the current directory
// (preopened as "."); its exit code is ours. A trap (a panic aborts on
// wasm32-wasip1) exits with 134, as SIGABRT would.
//
// Why two processes: node 20 crashed (SIGSEGV) while exiting after a test
// binary had run to its end and passed — on about half the exits of the
// library's unit tests here, and in CI even with `--single-threaded`. So
// this process runs the program in a child node and takes the exit code
// the child reports over IPC once `wasi.start` has returned. A child that
// dies before reporting (a crash while the program runs) is a failure.
import { readFile } from "node:fs/promises";
import { fork } from "node:child_process";
import { WASI } from "node:wasi";
import { argv, env, exit } from "node:process";
import { fileURLToPath } from "node:url";

const [wasmPath, ...args] = argv.slice(2);
if (!wasmPath) {
  console.error("usage: scripts/wasi-run.mjs program.wasm [args…]");
  exit(2);
}

if (process.send) {
  // The child: run the program, report its exit code, then exit.
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
  process.send({ code }, () => exit(code));
} else {
  const child = fork(fileURLToPath(import.meta.url), [wasmPath, ...args], {
    execArgv: ["--no-warnings", "--single-threaded"],
    stdio: "inherit",
  });
  let reported;
  child.on("message", (m) => {
    reported = m.code;
  });
  child.on("exit", (code, signal) => {
    if (reported !== undefined) {
      if (signal || code !== reported) {
        console.error(`(node ${signal ?? code} on exit after the program ended with ${reported})`);
      }
      exit(reported);
    }
    console.error(`the program did not finish: node ended with ${signal ?? code}`);
    exit(signal ? 128 + 11 : code || 1);
  });
}
