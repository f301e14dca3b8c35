#!/usr/bin/env node
// The S3-compatible server of `deploy/local/cluster up --blob s3`: the test
// server of tests/integration/s3 (@20minutes/s3rver, which verifies AWS
// Signature V4; `npm ci` there installs it) run as a long-lived daemon on
// a fixed loopback port, with the credentials of the cluster's secrets
// files instead of s3rver's built-in S3RVER/S3RVER (which is revoked).
// Unlike tests/integration/s3/server.js it does not stop when stdin
// closes: the cluster script starts it in the background, records its PID
// and stops it with SIGTERM. Objects live in DATA_DIR/<bucket>/<key>._S3rver_object.
//
// usage: node s3-server.js DATA_DIR PORT BUCKET ACCESS_KEY_FILE SECRET_KEY_FILE
'use strict';

const fs = require('fs');
const path = require('path');

const moduleDir = path.join(__dirname, '..', '..', 'tests', 'integration', 's3',
  'node_modules', '@20minutes', 's3rver');

function readSecret(file) {
  const text = fs.readFileSync(file, 'utf8').trim();
  if (text.length === 0) throw new Error(`${file} is empty`);
  return text;
}

async function main() {
  const [dir, portText, bucket, accessFile, secretFile] = process.argv.slice(2);
  const port = Number(portText);
  if (!dir || !bucket || !accessFile || !secretFile || !(port > 0 && port < 65536)) {
    console.error('usage: node s3-server.js DATA_DIR PORT BUCKET ' +
      'ACCESS_KEY_FILE SECRET_KEY_FILE');
    process.exit(2);
  }
  const S3rver = require(moduleDir);
  const AWSAccount = require(path.join(moduleDir, 'lib', 'models', 'account'));
  AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
  AWSAccount.DUMMY_ACCOUNT.createKeyPair(readSecret(accessFile), readSecret(secretFile));

  const server = new S3rver({
    address: '127.0.0.1',
    port,
    silent: true,
    directory: dir,
    serviceEndpoint: 'localhost',
    vhostBuckets: false,
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  await server.run();
  process.stdout.write(`s3: listening on 127.0.0.1:${port}, bucket ${bucket}\n`);

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
