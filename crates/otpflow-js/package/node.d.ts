// otpflow for node (an ES module that loads the wasm synchronously).
export * from "./api";
