'use strict';
// Skiff's Node.js function runner. Usage: node runner.js FUNCTION_DIR
//
// A function that depends on Knative's faas-js-runtime (as every template does) runs on it,
// exactly as its package.json's `npm start` would run it (faas-js-runtime ./index.js with
// FUNC_LOG_LEVEL=info), from its own directory, listening on $HOST:$PORT: the same context,
// handle(context, body) / handle(context, event), health endpoints and CloudEvent handling as
// on Knative. A function without it runs on Skiff's built-in runner (builtin.js).
const path = require('node:path');
const fs = require('node:fs');

const dir = path.resolve(process.argv[2] || process.cwd());
let cli = null;
try {
  cli = require.resolve('faas-js-runtime/bin/cli.js', { paths: [dir] });
} catch (_) {
  cli = null;
}
if (!cli) {
  require('./builtin.js');
} else {
  let main = 'index.js';
  try {
    main = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).main || main;
  } catch (_) {
    // no package.json: faas-js-runtime's default entry
  }
  process.chdir(dir);
  if (!process.env.FUNC_PORT && process.env.PORT) process.env.FUNC_PORT = process.env.PORT;
  if (!process.env.FUNC_LOG_LEVEL) process.env.FUNC_LOG_LEVEL = 'info';
  process.argv = [process.argv[0], cli, path.join(dir, main)];
  bindHost(process.env.HOST, Number(process.env.FUNC_PORT || 8080));
  require(cli);
}

// bindHost makes faas-js-runtime listen on host instead of every interface. $HOST (127.0.0.1
// from `skiff up` and `skiff func run`) keeps the function on loopback, reached only through
// the gateway; unset (as in a pod) nothing changes. faas-js-runtime 3.0.2 always listens on
// '::' and has no option for it, so its one listen on the function's port (an options object
// with host '::', from fastify) gets host instead; listens the function makes itself are left
// alone, and the hook removes itself after that one call.
function bindHost(host, port) {
  if (!host) return;
  const net = require('node:net');
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function (...args) {
    const o = args[0];
    if (o && typeof o === 'object' && o.host === '::' && Number(o.port) === port) {
      net.Server.prototype.listen = listen;
      args[0] = Object.assign({}, o, { host });
    }
    return listen.apply(this, args);
  };
}
