// The registry on the azure driver, on azurite.
import { randomBytes } from 'node:crypto';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite } from '../helpers/azurite.js';
import { cloudRegistrySuite } from './cloudSuite.js';

cloudRegistrySuite('azure (azurite)', async () => {
  const azurite = await startAzurite();
  const container = `c${randomBytes(6).toString('hex')}`;
  await new BlobServiceClient(azurite.serviceurl, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)).getContainerClient(container).create();
  return {
    storageYaml: (redirect) => `  azure:\n    accountname: ${AZURITE_ACCOUNT}\n    accountkey: ${AZURITE_KEY}\n    container: ${container}\n    serviceurl: ${azurite.serviceurl}\n    rootdirectory: /reg\n  redirect:\n    disable: ${!redirect}\n`,
    redirectPrefix: `${azurite.serviceurl}/${container}/reg/docker/registry/v2/blobs/`,
    signatureMark: 'sig=',
    canRedirect: true,
    stop: () => azurite.stop(),
  };
});
