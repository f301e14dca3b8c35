#!/usr/bin/env node
// Starts the S3-compatible test server (@20minutes/s3rver, a maintained fork
// of s3rver that verifies AWS Signature Version 4; s3rver 3.7.1 accepts any
// V4 signature) on 127.0.0.1 with an OS-chosen port, creates the buckets
// named on the command line, prints "port=N" on stdout once listening, and
// runs until stdin closes or SIGTERM/SIGINT arrives, so it never outlives
// the test that started it. Credentials are s3rver's defaults:
// access key id S3RVER, secret S3RVER.
//
// usage: node server.js [--allow-mismatched-signatures] DATA_DIR
//                       SERVICE_ENDPOINT BUCKET...
//   SERVICE_ENDPOINT: the domain under which <bucket>.s3.<domain> is served
//   virtual-host style, e.g. "localhost" (curl resolves *.localhost to
//   loopback itself, so no DNS or /etc/hosts entry is needed).
//   --allow-mismatched-signatures: accept any well-formed signature. The
//   fork computes the canonical URI of a virtual-host request as
//   /bucket/key (S3 signs /key), so correct virtual-host signatures only
//   pass on a server started with this flag; path style is checked fully.
'use strict';

const path = require('path');
const S3rver = require(path.join(__dirname, 'node_modules', '@20minutes', 's3rver'));

async function main() {
  const args = process.argv.slice(2);
  const lenient = args[0] === '--allow-mismatched-signatures';
  if (lenient) args.shift();
  const [dir, serviceEndpoint, ...buckets] = args;
  if (!dir || !serviceEndpoint || buckets.length === 0) {
    console.error('usage: node server.js [--allow-mismatched-signatures] ' +
      'DATA_DIR SERVICE_ENDPOINT BUCKET...');
    process.exit(2);
  }
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    serviceEndpoint,
    vhostBuckets: true,
    allowMismatchedSignatures: lenient,
    configureBuckets: buckets.map((name) => ({ name, configs: [] })),
  });
  const { port } = await server.run();
  process.stdout.write(`port=${port}\n`);

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
