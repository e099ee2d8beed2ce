// Builds a driver from the config's storage section.
import { Base } from './base.js';
import type { StorageDriver } from './driver.js';
import { FilesystemDriver } from './filesystem/driver.js';
import { InMemoryDriver } from './inmemory/driver.js';

export const DRIVER_NAMES = ['filesystem', 'inmemory'] as const;

export function createDriver(name: string, params: Record<string, unknown>): StorageDriver {
  switch (name) {
    case 'inmemory':
      return new Base(new InMemoryDriver());
    case 'filesystem': {
      const root = params.rootdirectory ?? '/var/lib/registry';
      if (typeof root !== 'string' || root === '') throw new Error('storage.filesystem.rootdirectory must be a non-empty string');
      return new Base(new FilesystemDriver({ rootdirectory: root }));
    }
    default:
      throw new Error(`storage driver "${name}" is not supported (supported: ${DRIVER_NAMES.join(', ')})`);
  }
}
