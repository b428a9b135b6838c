// Servers for the JS tests. The artifact origin they load from: a static server on
// 127.0.0.1 for a publish directory (ETag / If-None-Match, 404 for a file
// that is not there) that can turn hostile: after forge(), it declares a
// 3 GiB snapshot and sends nothing, which a loader must refuse before reading.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const http = require("node:http");
const crypto = require("node:crypto");

async function serveArtifacts(dir) {
  let forged = false;
  const server = http.createServer((req, res) => {
    const name = path.basename(req.url);
    if (forged && name === "snapshot.kgs") {
      res.writeHead(200, { "content-length": String(3 * 2 ** 30) });
      res.flushHeaders();
      return;
    }
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) return res.writeHead(404).end();
    const body = fs.readFileSync(file);
    const etag = `"${crypto.createHash("sha256").update(body).digest("hex").slice(0, 16)}"`;
    if (req.headers["if-none-match"] === etag) return res.writeHead(304).end();
    res.writeHead(200, { etag, "content-type": "application/octet-stream", "content-length": body.length }).end(body);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const port = server.address().port;
  return {
    port,
    url: `http://127.0.0.1:${port}/`,
    forge() {
      forged = true;
    },
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

// A port no one listens on now, for a server started next (workerd): the
// kernel picks it, so it is never one of the ephemeral ports in use (a
// random pick in 20000-40000 overlapped them and failed once in CI with
// "Address already in use").
async function freePort() {
  const s = http.createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  return port;
}

module.exports = { serveArtifacts, freePort };
