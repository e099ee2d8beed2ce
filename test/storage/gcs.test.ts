// The registry on the gcs driver, on the Cloud Storage emulator (firebase-tools).
import { startGcsEmulator } from '../helpers/gcs.js';
import { cloudRegistrySuite } from './cloudSuite.js';

cloudRegistrySuite('gcs (Cloud Storage emulator)', async () => {
  const emu = await startGcsEmulator();
  const bucket = await emu.bucket();
  const creds = `      client_email: ${emu.credentials.client_email}\n      private_key: ${JSON.stringify(emu.credentials.private_key)}\n`;
  return {
    // chunksize 256 KiB: the suite's uploads span several parts.
    storageYaml: (redirect) => `  gcs:\n    bucket: ${bucket}\n    endpoint: ${emu.endpoint}\n    rootdirectory: /reg\n    chunksize: 262144\n    credentials:\n${creds}  redirect:\n    disable: ${!redirect}\n`,
    redirectPrefix: `${emu.endpoint}/${bucket}/reg/docker/registry/v2/blobs/`,
    signatureMark: 'X-Goog-Signature=',
    canRedirect: true,
    stop: () => emu.stop(),
  };
});
