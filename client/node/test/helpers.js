'use strict';
// Test support: real `graphexec serve` processes and Python helpers, from the repository checkout.
const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const PYTHON = process.env.GRAPHEXEC_PYTHON || 'python3';
const READY_TIMEOUT_MS = 60_000;
// `graphexec` must come from this checkout: a script run by path puts only its own folder on sys.path,
// and an installed (e.g. editable) graphexec elsewhere would otherwise answer for it.
const PYTHON_ENV = {
  ...process.env,
  PYTHONPATH: [REPO_ROOT, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter),
};

/** Start `python -m graphexec serve --port 0 ...args`; resolves to {target, port, stop()} once it listens. */
function startServer(...args) {
  const child = spawn(PYTHON, ['-m', 'graphexec', 'serve', '--port', '0', ...args], {
    cwd: REPO_ROOT, env: PYTHON_ENV, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const stop = () => new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGTERM');
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`server did not start:\n${output}`)); }, READY_TIMEOUT_MS);
    const onData = (chunk) => {
      output += chunk;
      const match = /graphexec serving on (grpcs?:\/\/\S+:(\d+))/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ target: match[1], port: Number(match[2]), stop });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${output}`)); });
  });
}

/**
 * A fresh CA with server (for 127.0.0.1 and localhost) and client certificates, and a tokens file with
 * tenants alice and bob, made in `folder` by the Python security tests' own helper
 * (tests/integration/security_setup.py). Resolves to {folder, aliceToken, bobToken}.
 */
function makePki(folder) {
  const out = runPython(['-c', [
    'import json, pathlib, sys',
    "sys.path.insert(0, 'tests/integration')",
    'import security_setup as s',
    'folder = s.make_pki(pathlib.Path(sys.argv[1]))',
    's.write_tokens(folder)',
    'print(json.dumps({"aliceToken": s.ALICE_TOKEN, "bobToken": s.BOB_TOKEN}))',
  ].join('\n'), folder]);
  return { folder, ...JSON.parse(out) };
}

/** Run a Python script (path relative to the repository, or '-c' code) and return its stdout. */
function runPython(args, { input = undefined } = {}) {
  const done = spawnSync(PYTHON, args, { cwd: REPO_ROOT, env: PYTHON_ENV, input, encoding: input instanceof Buffer ? undefined : 'utf8', maxBuffer: 64 << 20, timeout: 120_000 });
  if (done.status !== 0) throw new Error(`${PYTHON} ${args.join(' ')} failed (${done.status}):\n${done.stderr}`);
  return done.stdout.toString();
}

module.exports = { startServer, runPython, makePki, REPO_ROOT, PYTHON };
