// build.mjs - bundle the published wukongimjssdk@1.0.4 (ES modules with extension-less
// imports, not loadable by a browser as shipped) into one browser script, demo/vendor/wksdk.js,
// which defines the global `WK` ({ WKSDK, Channel, ChannelTypePerson, ChannelTypeGroup,
// MessageText, ConnectStatus }). Run by scripts/build.sh after `npm ci` here.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const WEB = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(WEB, 'package.json'));
const sdkPkgPath = require.resolve('wukongimjssdk/package.json');
const sdkPkg = JSON.parse(fs.readFileSync(sdkPkgPath, 'utf8'));
if (sdkPkg.version !== '1.0.4') {
  console.error(`wukongimjssdk ${sdkPkg.version} installed; the demo targets exactly 1.0.4 (run npm ci in web/)`);
  process.exit(1);
}
const libDir = path.join(path.dirname(sdkPkgPath), 'lib');
const outfile = path.join(WEB, 'demo', 'vendor', 'wksdk.js');

await build({
  stdin: {
    contents: [
      "export { default as WKSDK } from './index';",
      "export { ConnectStatus } from './connect_manager';",
      "export { Channel, ChannelTypePerson, ChannelTypeGroup, MessageText } from './model';",
    ].join('\n'),
    resolveDir: libDir,
    sourcefile: 'wksdk-entry.js',
    loader: 'js',
  },
  bundle: true,
  platform: 'browser',
  format: 'iife',
  globalName: 'WK',
  target: 'es2019',
  minify: true,
  outfile,
  logLevel: 'warning',
  define: { global: 'globalThis' },
  banner: { js: `// wukongimjssdk@${sdkPkg.version} bundled by web/build.mjs - do not edit` },
});
console.log(`bundled wukongimjssdk@${sdkPkg.version} -> ${path.relative(WEB, outfile)}`);
