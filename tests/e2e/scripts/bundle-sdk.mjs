// bundle-sdk.mjs - bundle the published wukongimjssdk@1.0.4 (ES modules with extension-less
// imports, unusable from Node as shipped; wire-protocol.md §12) into one CommonJS file,
// tests/e2e/.build/wksdk.cjs, that lib/sdk_child.mjs can require. Run by `npm test` (pretest).

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const E2E = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(E2E, 'package.json'));
const sdkPkgPath = require.resolve('wukongimjssdk/package.json');
const sdkPkg = JSON.parse(fs.readFileSync(sdkPkgPath, 'utf8'));
if (sdkPkg.version !== '1.0.4') {
  console.error(`wukongimjssdk ${sdkPkg.version} installed; the suite targets exactly 1.0.4 (run npm ci)`);
  process.exit(1);
}
const libDir = path.join(path.dirname(sdkPkgPath), 'lib');
const outfile = path.join(E2E, '.build', 'wksdk.cjs');

await build({
  stdin: {
    contents: [
      "export { default as WKSDK } from './index';",
      "export { ConnectStatus } from './connect_manager';",
      "export { Channel, MessageText } from './model';",
      "export { PacketType } from './proto';",
    ].join('\n'),
    resolveDir: libDir,
    sourcefile: 'wksdk-entry.js',
    loader: 'js',
  },
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  outfile,
  logLevel: 'warning',
  banner: { js: `// wukongimjssdk@${sdkPkg.version} bundled by tests/e2e/scripts/bundle-sdk.mjs - do not edit` },
});
console.log(`bundled wukongimjssdk@${sdkPkg.version} -> ${path.relative(E2E, outfile)}`);
