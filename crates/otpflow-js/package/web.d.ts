// otpflow for browsers, edge functions and bundlers: `await init()` once first.
export * from "./api";
/** Loads the module (by default the .wasm beside this file, or the URL, Response or bytes given) and binds the API. */
export default function init(moduleOrPath?: string | URL | Request | Response | BufferSource | WebAssembly.Module): Promise<void>;
