'use strict';
// A client's transport security and identity, from the same environment variables as the Python client
// (graphexec/rpc/tls.py): GRAPHEXEC_TLS_CA (the CA that signed the server's certificate; the system's
// roots without it), GRAPHEXEC_TLS_CERT and GRAPHEXEC_TLS_KEY (a client certificate, for servers that
// require one), GRAPHEXEC_TOKEN (the caller's tenant's bearer token) or GRAPHEXEC_TOKEN_FILE (a file
// holding it).
const fs = require('node:fs');
const grpc = require('@grpc/grpc-js');

/**
 * {address, secure} from what users write: "grpc://host:port" (plaintext), "grpcs://host:port" (TLS),
 * or any gRPC name ("host:port", "dns:///name:port", "ipv4:a:p,b:q"), plaintext.
 */
function parseTarget(target) {
  for (const [scheme, secure] of [['grpcs://', true], ['grpc://', false]]) {
    if (target.startsWith(scheme)) {
      const address = target.slice(scheme.length).replace(/\/+$/, '');
      if (!address) throw new TypeError(`graphexec targets look like grpc://host:port or grpcs://host:port, got '${target}'`);
      return { address, secure };
    }
  }
  return { address: target, secure: false };
}

/** A PEM file's bytes; an Error in one line naming it when it is unreadable or not PEM. */
function readPem(path, what) {
  let data;
  try {
    data = fs.readFileSync(path);
  } catch (error) {
    throw new Error(`cannot read ${what} ${path}: ${error.code ?? error.message}`);
  }
  if (!data.includes('-----BEGIN ')) throw new Error(`${what} ${path} is not a PEM file`);
  return data;
}

/** TLS channel credentials from GRAPHEXEC_TLS_CA, GRAPHEXEC_TLS_CERT and GRAPHEXEC_TLS_KEY. */
function tlsCredentials(env = process.env) {
  const { GRAPHEXEC_TLS_CA: ca, GRAPHEXEC_TLS_CERT: cert, GRAPHEXEC_TLS_KEY: key } = env;
  if (Boolean(cert) !== Boolean(key)) {
    throw new TypeError('a TLS client certificate needs both GRAPHEXEC_TLS_CERT and GRAPHEXEC_TLS_KEY');
  }
  return grpc.credentials.createSsl(
    ca ? readPem(ca, 'TLS CA') : null,
    key ? readPem(key, 'TLS key') : null,
    cert ? readPem(cert, 'TLS certificate') : null,
  );
}

/** GRAPHEXEC_TOKEN, or the contents of the file GRAPHEXEC_TOKEN_FILE names; '' when neither is set. */
function bearerToken(env = process.env) {
  if (env.GRAPHEXEC_TOKEN) return env.GRAPHEXEC_TOKEN;
  if (!env.GRAPHEXEC_TOKEN_FILE) return '';
  try {
    return fs.readFileSync(env.GRAPHEXEC_TOKEN_FILE, 'utf8').trim();
  } catch (error) {
    throw new Error(`cannot read GRAPHEXEC_TOKEN_FILE ${env.GRAPHEXEC_TOKEN_FILE}: ${error.code ?? error.message}`);
  }
}

/** The metadata every call carries: `authorization: Bearer TOKEN` when there is a token. */
function callMetadata(token) {
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}

module.exports = { parseTarget, readPem, tlsCredentials, bearerToken, callMetadata };
