import { randomBytes } from 'node:crypto';
import { Base } from '../base.js';
import { AzureDriver } from './driver.js';
import { driverSuite } from '../testsuite/suite.js';
import { type Azurite, AZURITE_ACCOUNT, AZURITE_KEY, startAzurite } from '../../test/helpers/azurite.js';

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
});
