// fake_hub_server.js: a stand-in for a model hub, for tests/cli_pull_hf.sh.
//
// usage: node fake_hub_server.js ROOT LOG
// Serves ROOT/ORG/REPO/... like the hub: the file listing at
// /api/models/ORG/REPO/tree/main, and files at /ORG/REPO/resolve/main/PATH,
// which redirect to /cdn/ORG/REPO/PATH with the SHA-256 in X-Linked-Etag
// (as the hub does for large files). Prints "PORT <n>" once it listens on
// 127.0.0.1 and appends one line per request to LOG.
//
// Misbehaviour on purpose, keyed on names:
// - the first request of each file without a Range header gets half the
//   file and then the connection closes;
// - files named *BADSUM* are announced with a wrong SHA-256 (listing and header);
// - files named *NORANGE* ignore Range headers (200 and the whole file);
// - repositories of an organisation named gated-* answer 401 unless the
//   request carries "Authorization: Bearer sekrit".
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const root = process.argv[2];
const logPath = process.argv[3];
if (!root || !logPath) {
  console.error('usage: node fake_hub_server.js ROOT LOG');
  process.exit(2);
}

const served = new Set(); // files that already had their first full request

function log(line) {
  fs.appendFileSync(logPath, line + '\n');
}

function sha256(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function announcedSha(file) {
  const real = sha256(file);
  if (!path.basename(file).includes('BADSUM')) return real;
  // Another valid-looking digest: the real one with its first digit changed.
  return (real[0] === '0' ? '1' : '0') + real.slice(1);
}

// The repository folder's files, recursively, as paths relative to it.
function walk(dir, prefix) {
  let out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? prefix + '/' + e.name : e.name;
    if (e.isDirectory()) {
      out.push({ type: 'directory', path: rel });
      out = out.concat(walk(path.join(dir, e.name), rel));
    } else {
      out.push({ type: 'file', path: rel });
    }
  }
  return out;
}

// A path inside ROOT, or null when the request tries to leave it.
function inside(...parts) {
  const p = path.resolve(root, ...parts.map(decodeURIComponent));
  return p.startsWith(path.resolve(root) + path.sep) ? p : null;
}

function send(res, status, body, headers) {
  res.writeHead(status, Object.assign({ 'Content-Type': 'application/json' }, headers || {}));
  res.end(body);
}

function authorized(req, org) {
  return !org.startsWith('gated-') || req.headers.authorization === 'Bearer sekrit';
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  log(`${req.method} ${url.pathname} range=${req.headers.range || '-'} ` +
      `auth=${req.headers.authorization ? 'yes' : 'no'}`);
  const p = url.pathname.split('/').slice(1);

  // /api/models/ORG/REPO/tree/main
  if (p[0] === 'api' && p[1] === 'models' && p[4] === 'tree' && p[5] === 'main') {
    const dir = inside(p[2], p[3]);
    if (!dir || !fs.existsSync(dir)) return send(res, 404, '{"error":"Repository not found"}');
    if (!authorized(req, p[2])) return send(res, 401, '{"error":"Access restricted"}');
    const listing = walk(dir, '').map((e) => {
      if (e.type !== 'file') return { type: 'directory', oid: 'f'.repeat(40), size: 0, path: e.path };
      const file = path.join(dir, e.path);
      const size = fs.statSync(file).size;
      const item = { type: 'file', oid: '0'.repeat(40), size, path: e.path };
      if (e.path.endsWith('.gguf')) item.lfs = { oid: announcedSha(file), size, pointerSize: 134 };
      return item;
    });
    return send(res, 200, JSON.stringify(listing));
  }

  // /ORG/REPO/resolve/main/PATH -> /cdn/ORG/REPO/PATH
  if (p.length >= 5 && p[2] === 'resolve' && p[3] === 'main') {
    const rel = p.slice(4).join('/');
    const file = inside(p[0], p[1], ...p.slice(4));
    if (!file || !fs.existsSync(file) || !fs.statSync(file).isFile())
      return send(res, 404, '{"error":"Entry not found"}');
    if (!authorized(req, p[0])) return send(res, 401, '{"error":"Access restricted"}');
    res.writeHead(302, {
      Location: `/cdn/${p[0]}/${p[1]}/${rel}`,
      'X-Linked-Etag': `"${announcedSha(file)}"`,
      'X-Linked-Size': String(fs.statSync(file).size),
      ETag: '"0123456789abcdef0123456789abcdef01234567"',
    });
    return res.end();
  }

  // /cdn/ORG/REPO/PATH: the bytes, with Range support.
  if (p[0] === 'cdn' && p.length >= 4) {
    const file = inside(...p.slice(1));
    if (!file || !fs.existsSync(file) || !fs.statSync(file).isFile())
      return send(res, 404, 'not found');
    const data = fs.readFileSync(file);
    const headers = { 'Content-Type': 'application/octet-stream', ETag: '"cdn-etag-1"',
                      'Accept-Ranges': 'bytes' };
    const range = /^bytes=(\d+)-$/.exec(req.headers.range || '');
    if (range && !path.basename(file).includes('NORANGE')) {
      const start = Number(range[1]);
      if (start >= data.length) {
        res.writeHead(416, Object.assign(headers, { 'Content-Range': `bytes */${data.length}` }));
        return res.end();
      }
      res.writeHead(206, Object.assign(headers, {
        'Content-Length': String(data.length - start),
        'Content-Range': `bytes ${start}-${data.length - 1}/${data.length}`,
      }));
      return res.end(data.subarray(start));
    }
    res.writeHead(200, Object.assign(headers, { 'Content-Length': String(data.length) }));
    if (!req.headers.range && !served.has(file)) {
      served.add(file);
      const half = Math.floor(data.length / 2);
      return res.write(data.subarray(0, half), () => res.socket.end());
    }
    return res.end(data);
  }

  send(res, 404, '{"error":"no such route"}');
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});
// The test kills us; never outlive it by much.
setTimeout(() => process.exit(0), 120 * 1000).unref();
