import { randomBytes } from 'node:crypto';
import { Base } from '../base.js';
import { AzureDriver } from './driver.js';
import { driverSuite } from '../testsuite/suite.js';
import { expect } from 'chai';
import { type Azurite, AZURITE_ACCOUNT, AZURITE_KEY, startAzurite } from '../../test/helpers/azurite.js';
import { startStorageProxy } from '../../test/helpers/storageProxy.js';
import type { FileInfo } from '../driver.js';

describe('azure driver on azurite', function () {
  this.timeout(120000);
  let azurite: Azurite;
  before(async () => { azurite = await startAzurite(); });
  after(async () => { await azurite?.stop(); });

  driverSuite('azure (azurite)', async () => {
    const container = `c${randomBytes(6).toString('hex')}`;
    const d = new AzureDriver({ accountname: AZURITE_ACCOUNT, accountkey: AZURITE_KEY, container, serviceurl: azurite.serviceurl, rootdirectory: '/registry' });
    await d.container.create();
    return { driver: new Base(d), cleanup: async () => { await d.container.delete(); } };
  }, { largeFileSize: 32 << 20, capabilities: ['commitTo', 'deleteFiles'] });

  it('walks with one flat listing per page and no HEAD, paging through a skipped folder that spans pages', async () => {
    const container = `c${randomBytes(6).toString('hex')}`;
    const url = new URL(azurite.serviceurl);
    const proxy = await startStorageProxy(url.origin, (m, u) => (m === 'GET' && u.searchParams.get('comp') === 'list' ? 'list' : m));
    const raw = new AzureDriver({ accountname: AZURITE_ACCOUNT, accountkey: AZURITE_KEY, container, serviceurl: `${proxy.url}${url.pathname}`, rootdirectory: '/registry', listPageSize: 7 });
    try {
      await raw.container.create();
      const d = new Base(raw);
      // 5 folders of 6 files: 30 keys, 5 pages of 7; b/ runs from key 7 to 12, across the first page's end.
      const files = ['a', 'b', 'c', 'd', 'e'].flatMap((f) => Array.from({ length: 6 }, (_, i) => `/w/${f}/${i}/data`));
      await Promise.all(files.map((p) => d.putContent({}, p, Buffer.from(p))));
      proxy.take();
      const seen: FileInfo[] = [];
      await d.walk({}, '/w', (fi) => { seen.push(fi); return fi.path === '/w/b' ? 'skipdir' : undefined; });
      const c = proxy.take().registry;
      expect(c.get('list'), 'listing pages').to.equal(5);
      expect(c.get('HEAD') ?? 0, 'stats').to.equal(0);
      const visited = seen.filter((f) => !f.isDir).map((f) => f.path);
      expect(visited).to.deep.equal(files.filter((p) => !p.startsWith('/w/b/')));
      expect(seen.find((f) => f.path === '/w/a/0/data')?.size).to.equal('/w/a/0/data'.length);
      expect(seen.filter((f) => f.isDir).map((f) => f.path)).to.deep.equal(['/w/a', '/w/a/0', '/w/a/1', '/w/a/2', '/w/a/3', '/w/a/4', '/w/a/5', '/w/b',
        ...['c', 'd', 'e'].flatMap((f) => [`/w/${f}`, ...Array.from({ length: 6 }, (_, i) => `/w/${f}/${i}`)])]);
    } finally {
      await raw.container.delete().catch(() => {});
      await proxy.close();
    }
  });
});
