#!/usr/bin/env node
// The registry command: serve (more maintenance commands follow distribution's).
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { loadConfig } from '../lib/config/config.js';
import { ConfigError } from '../lib/config/schema.js';
import { createLogger } from '../lib/log.js';
import { startRegistry } from '../lib/server.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('registry')
  .description('OCI Distribution / Docker Registry v2 server')
  .version(pkg.version, '-v, --version');

program.command('serve')
  .description('serve the registry API')
  .argument('[config]', 'configuration file (else REGISTRY_CONFIGURATION_PATH)')
  .action(async (file?: string) => {
    let config;
    try {
      config = loadConfig(file);
    } catch (e) {
      console.error(e instanceof ConfigError ? e.message : e);
      process.exit(1);
    }
    const log = createLogger(config.log);
    let running;
    try {
      running = await startRegistry(config, log);
    } catch (e) {
      console.error(e instanceof ConfigError ? e.message : `registry: ${(e as Error).message}`);
      process.exit(1);
    }
    let stopping = false;
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal: sig }, 'draining in-flight requests');
      running.close().then(() => { log.info('stopped'); process.exit(0); });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });

program.parseAsync(process.argv).catch((e) => {
  console.error(e);
  process.exit(1);
});
