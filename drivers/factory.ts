// Builds a driver from the config's storage section.
import { Base } from './base.js';
import type { StorageDriver } from './driver.js';
import { FilesystemDriver } from './filesystem/driver.js';
import { InMemoryDriver } from './inmemory/driver.js';
import { AzureDriver } from './azure/driver.js';

export const DRIVER_NAMES = ['filesystem', 'inmemory', 'azure'] as const;

function str(params: Record<string, unknown>, key: string, driver: string, required: boolean): string | undefined {
  const v = params[key];
  if (v === undefined || v === null || v === '') {
    if (required) throw new Error(`storage.${driver}.${key} is required`);
    return undefined;
  }
  if (typeof v !== 'string') throw new Error(`storage.${driver}.${key} must be a string`);
  return v;
}

const AZURE_KEYS = ['accountname', 'accountkey', 'container', 'realm', 'serviceurl', 'rootdirectory'];

export function createDriver(name: string, params: Record<string, unknown>): StorageDriver {
  switch (name) {
    case 'inmemory':
      return new Base(new InMemoryDriver());
    case 'filesystem': {
      const root = params.rootdirectory ?? '/var/lib/registry';
      if (typeof root !== 'string' || root === '') throw new Error('storage.filesystem.rootdirectory must be a non-empty string');
      return new Base(new FilesystemDriver({ rootdirectory: root }));
    }
    case 'azure': {
      for (const k of Object.keys(params)) {
        if (!AZURE_KEYS.includes(k)) throw new Error(`storage.azure.${k} is not a parameter of the azure driver (${AZURE_KEYS.join(', ')})`);
      }
      return new Base(new AzureDriver({
        accountname: str(params, 'accountname', 'azure', true)!,
        accountkey: str(params, 'accountkey', 'azure', false),
        container: str(params, 'container', 'azure', true)!,
        realm: str(params, 'realm', 'azure', false),
        serviceurl: str(params, 'serviceurl', 'azure', false),
        rootdirectory: str(params, 'rootdirectory', 'azure', false),
      }));
    }
    default:
      throw new Error(`storage driver "${name}" is not supported (supported: ${DRIVER_NAMES.join(', ')})`);
  }
}
