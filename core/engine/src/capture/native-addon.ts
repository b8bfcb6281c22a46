// Loading the project's own node-gyp addons (core/engine/native/*.c) and wording their errno results.
import * as os from 'node:os';
import * as path from 'node:path';

/** Where node-gyp puts the addons: core/engine/build/Release (this file runs from core/engine/dist/src/capture). */
const BUILD_DIR = path.join(__dirname, '..', '..', '..', 'build', 'Release');

/** Loaded addons by name: require() caches too, but a failed load should be retried, not remembered. */
const loaded = new Map<string, unknown>();

/**
 * The addon `name` (build/Release/<name>.node), or an Error that says how to build it;
 * `needs` names what building it takes (e.g. 'a C compiler and make').
 */
export function loadNativeAddon<T>(name: string, needs: string): T {
  const cached = loaded.get(name);
  if (cached) return cached as T;
  let addon: T;
  try {
    addon = require(path.join(BUILD_DIR, `${name}.node`)) as T;
  } catch (err) {
    const why = (err as Error).message.split('\n')[0];
    throw new Error(`cannot load the ${name} addon (${why}); build it with \`npm rebuild @tcpcopy/core\` ` +
      `(or ./scripts/setup.sh; it needs ${needs})`);
  }
  loaded.set(name, addon);
  return addon;
}

/** The errno name or text of a negative count from an addon, for a message. */
export function errnoText(negativeErrno: number): string {
  const code = -negativeErrno;
  const name = Object.entries(os.constants.errno).find(([, n]) => n === code)?.[0];
  return name ? `${name} (errno ${code})` : `errno ${code}`;
}
