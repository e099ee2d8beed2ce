import { Base } from '../base.js';
import { InMemoryDriver } from './driver.js';
import { driverSuite } from '../testsuite/suite.js';

driverSuite('inmemory', async () => ({ driver: new Base(new InMemoryDriver()), cleanup: async () => {} }), { largeFileSize: 64 << 20 });
