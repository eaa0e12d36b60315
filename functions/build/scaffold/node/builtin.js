'use strict';
// Skiff's built-in Node.js function runner, for functions that do not depend on Knative's
// faas-js-runtime (runner.js chooses): serves the function module (handle(context, body) or
// handle(context, event)) on $PORT with Node's http module alone, the way faas-js-runtime does.
// Usage: node builtin.js FUNCTION_DIR
const http = require('node:http');
const path = require('node:path');
const fs = require('node:fs');

const dir = path.resolve(process.argv[2] || process.cwd());
const pkg = readJSON(path.join(dir, 'package.json')) || {};
const fn = require(path.join(dir, pkg.main || 'index.js'));
const handle = typeof fn === 'function' ? fn : (fn.handle || (fn.default && fn.default.handle));
if (typeof handle !== 'function') {
  console.error(`function: ${pkg.main || 'index.js'} exports no handle function`);
  process.exit(1);
}

// The function's own cloudevents package, when it depends on one, so that handlers get (and may
// return) real CloudEvent instances.
let ce = null;
try {
  ce = require(require.resolve('cloudevents', { paths: [dir] }));
} catch (_) {
  ce = null;
}

const log = {};
for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) {
  log[level] = (...args) => console.log(JSON.stringify({ level, time: Date.now(), msg: args.map(fmt).join(' ') }));
}
function fmt(a) {
  if (typeof a === 'string') return a;
  try { return JSON.stringify(a); } catch (_) { return String(a); }
}

function readJSON(p) {
  try { return JSON.parse(fs.readFileSync(p, 'utf8')); } catch (_) { return null; }
}

const CE_ATTRS = ['specversion', 'id', 'source', 'type', 'subject', 'time', 'dataschema', 'datacontenttype'];

function isCloudEventRequest(headers) {
  return Boolean(headers['ce-specversion']) ||
    String(headers['content-type'] || '').startsWith('application/cloudevents+json');
}

function parseBody(headers, raw) {
  const type = String(headers['content-type'] || '');
  const text = raw.toString('utf8');
  if (type.includes('json')) {
    try { return JSON.parse(text); } catch (_) { return text; }
  }
  if (type.startsWith('application/x-www-form-urlencoded')) {
    return Object.fromEntries(new URLSearchParams(text));
  }
  return raw.length ? text : undefined;
}

function toEvent(headers, raw) {
  if (ce) {
    return ce.HTTP.toEvent({ headers, body: raw.toString('utf8') });
  }
  const type = String(headers['content-type'] || '');
  if (type.startsWith('application/cloudevents+json')) {
    return JSON.parse(raw.toString('utf8'));
  }
  const event = {};
  for (const [k, v] of Object.entries(headers)) {
    if (k.startsWith('ce-')) event[k.slice(3)] = v;
  }
  if (headers['content-type']) event.datacontenttype = headers['content-type'];
  event.data = parseBody(headers, raw);
  return event;
}

function looksLikeEvent(v) {
  return v && typeof v === 'object' && v.specversion && v.type && v.source && v.id;
}

function writeEvent(res, event) {
  if (ce && !(event instanceof ce.CloudEvent)) event = new ce.CloudEvent(event);
  if (ce) {
    const msg = ce.HTTP.binary(event);
    res.writeHead(200, msg.headers);
    res.end(msg.body === undefined ? '' : (typeof msg.body === 'string' ? msg.body : JSON.stringify(msg.body)));
    return;
  }
  const headers = {};
  for (const [k, v] of Object.entries(event)) {
    if (k === 'data' || k === 'data_base64' || v === undefined || k === 'datacontenttype') continue;
    headers['ce-' + k] = String(v);
  }
  headers['content-type'] = event.datacontenttype || 'application/json';
  const data = event.data;
  res.writeHead(200, headers);
  res.end(data === undefined ? '' : (typeof data === 'string' ? data : JSON.stringify(data)));
}

function writeResult(res, result) {
  if (result === undefined || result === null) {
    res.writeHead(204);
    res.end();
    return;
  }
  if (looksLikeEvent(result)) {
    writeEvent(res, result);
    return;
  }
  if (typeof result === 'object' && !Buffer.isBuffer(result) &&
      ('statusCode' in result || 'headers' in result || 'body' in result || 'statusMessage' in result)) {
    const headers = Object.assign({}, result.headers || {});
    let body = result.body;
    if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
      body = JSON.stringify(body);
      if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
    }
    res.writeHead(result.statusCode || 200, result.statusMessage, headers);
    res.end(body === undefined ? '' : body);
    return;
  }
  if (typeof result === 'string' || Buffer.isBuffer(result)) {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(result);
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(result));
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/health/readiness' || url.pathname === '/health/liveness') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('OK');
      return;
    }
    const raw = Buffer.concat(chunks);
    const query = Object.fromEntries(url.searchParams);
    const context = {
      log, query, headers: req.headers, method: req.method, httpVersion: req.httpVersion,
      httpVersionMajor: req.httpVersionMajor, httpVersionMinor: req.httpVersionMinor,
    };
    try {
      let arg;
      if (isCloudEventRequest(req.headers)) {
        arg = toEvent(req.headers, raw);
        context.cloudevent = arg;
      } else {
        arg = parseBody(req.headers, raw);
        context.body = arg;
      }
      writeResult(res, await handle(context, arg));
    } catch (err) {
      log.error('function failed', String(err && err.stack || err));
      if (!res.headersSent) {
        const bad = err && /CloudEvent|invalid|ValidationError/i.test(String(err.name) + String(err.message));
        res.writeHead(bad ? 400 : 500, { 'content-type': 'text/plain' });
      }
      res.end(String(err && err.message || err));
    }
  });
});

// $HOST (set to 127.0.0.1 by `skiff up` and `skiff func run`) keeps the function on loopback;
// unset (as in a pod) it listens on every interface.
const port = Number(process.env.PORT || 8080);
const host = process.env.HOST || undefined;
server.listen(port, host, () => log.info(`function listening on ${host || ''}:${port}`));
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 10000).unref();
  });
}
