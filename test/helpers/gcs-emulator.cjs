// Runs the Cloud Storage emulator from firebase-tools for the tests. It serves
// the GCS JSON API that @google-cloud/storage speaks. Started here without its
// security-rules runtime (a Java process): the registry's requests are admin
// requests, which the emulator never checks against rules.
// One fix: it routes copies (rewriteTo/copyTo) only without the
// /storage/v1 prefix that the SDK sends, so we strip the prefix for them.
// Usage: node gcs-emulator.cjs PORT
'use strict';
const { StorageEmulator } = require('firebase-tools/lib/emulator/storage');
const { EmulatorRegistry } = require('firebase-tools/lib/emulator/registry');

class RulelessStorageEmulator extends StorageEmulator {
  async start() {
    const { host, port } = this.getInfo();
    const { createApp } = require('firebase-tools/lib/emulator/storage/server');
    this._app = await createApp(this.args.projectId, this);
    const copy = /^\/storage\/v1(\/b\/[^/]+\/o\/[^/]+\/(rewriteTo|copyTo)\/)/;
    const server = require('node:http').createServer((req, res) => {
      req.url = req.url.replace(copy, '$1');
      this._app(req, res);
    });
    await new Promise((resolve, reject) => {
      server.listen(port, host, resolve);
      server.on('error', reject);
    });
  }
}

const port = Number(process.argv[2]);
const emulator = new RulelessStorageEmulator({ projectId: 'test-project', host: '127.0.0.1', port, rules: [] , auto_download: false });
// Upload session URLs are built from the registry of running emulators.
EmulatorRegistry.start(emulator).catch((e) => { console.error(e); process.exit(1); });
