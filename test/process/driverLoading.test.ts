// Only the configured storage driver's module is loaded. A module hook makes
// every cloud SDK unloadable; a filesystem registry must still check its
// config, collect garbage and serve, and an s3 one must fail on the hook
// (which shows the hook bites).
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REGISTRY_BIN, tempDir } from '../helpers/registry.js';

const HOOKS = `export async function resolve(specifier, context, next) {
  if (/^@(aws-sdk|smithy|azure|google-cloud)\\//.test(specifier)) throw new Error('blocked by the test: ' + specifier);
  return next(specifier, context);
}`;
const REGISTER = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOKS)}`)});`;

function run(args: string[]) {
  return spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(REGISTER)}`, REGISTRY_BIN, ...args], { encoding: 'utf8', timeout: 60000 });
}

describe('the storage driver factory loads only the configured driver', function () {
  this.timeout(120000);
  let dir: string;
  before(async () => { dir = await tempDir('driver-loading'); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('filesystem: config check and garbage-collect run with every cloud SDK unloadable', async () => {
    const file = join(dir, 'fs.yml');
    await writeFile(file, `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'root')}\n`);
    const check = run(['config', 'check', file]);
    expect(check.status, check.stderr).to.equal(0);
    const gc = run(['garbage-collect', '--dry-run', file]);
    expect(gc.status, gc.stderr).to.equal(0);
    expect(gc.stdout).to.match(/0 repositories, 0 manifests and 0 blobs marked/);
  });

  for (const [driver, params] of [
    ['s3', 'region: us-east-1\n    bucket: b\n    regionendpoint: http://127.0.0.1:9'],
    ['azure', 'accountname: a\n    accountkey: a2V5\n    container: c'],
    ['gcs', 'bucket: b'],
  ] as const) {
    it(`${driver}: the same hook stops config check at the SDK (the hook bites)`, async () => {
      const file = join(dir, `${driver}.yml`);
      await writeFile(file, `version: 0.1\nstorage:\n  ${driver}:\n    ${params}\n`);
      const check = run(['config', 'check', file]);
      expect(check.status, check.stderr).to.equal(1);
      expect(check.stderr).to.match(/blocked by the test: @(aws-sdk|smithy|azure|google-cloud)\//);
    });
  }
});
