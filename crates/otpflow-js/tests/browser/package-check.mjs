// The built package's web entry (pkg/web, pkg/slim/web) in headless
// Chromium: serves the package and tests/browser/package.html on a free
// loopback port, has Chromium load the page for each flavor and dump its
// DOM, and checks the page's verdict. Usage: node package-check.mjs PKG_DIR
// (scripts/test.sh runs it). The server and Chromium are this process's
// own, closed before it exits.
import http from "node:http";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.resolve(process.argv[2] ?? path.join(here, "../../pkg"));
const chromium = process.env.CHROMIUM ?? "chromium";
const types = { ".js": "text/javascript", ".html": "text/html", ".wasm": "application/wasm", ".json": "application/json" };

const server = http.createServer(async (req, res) => {
  const url = decodeURIComponent(new URL(req.url, "http://localhost").pathname);
  const file = url === "/package.html" ? path.join(here, "package.html") : path.join(pkg, url.replace(/^\/pkg\//, ""));
  if (!file.startsWith(pkg) && file !== path.join(here, "package.html")) {
    res.writeHead(403).end();
    return;
  }
  try {
    const body = await fs.readFile(file);
    res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const { port } = server.address();

let failed = false;
try {
  for (const flavor of ["web", "slim/web"]) {
    const { stdout } = await promisify(execFile)(
      chromium,
      [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=20000",
        "--dump-dom",
        `http://127.0.0.1:${port}/package.html?flavor=${flavor}`,
      ],
      { timeout: 120_000, maxBuffer: 1 << 20 },
    );
    const verdict = /<pre id="out">([^<]*)<\/pre>/.exec(stdout)?.[1] ?? "no verdict";
    const want = flavor === "web" ? "ok full" : "ok slim";
    console.log(`package ${flavor} in Chromium: ${verdict}`);
    if (verdict !== want) failed = true;
  }
} finally {
  server.close();
}
process.exit(failed ? 1 : 0);
