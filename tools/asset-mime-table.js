// Writes funcplane/assets/mime.json: file extension -> Content-Type, exactly as wrangler
// types an asset when it uploads it (workers-shared's getContentType: the `mime` package,
// version 4, standard types then "other" types, "; charset=utf-8" added to text/* types).
// The tables are read from the wrangler bundle pinned in package.json, so a wrangler
// upgrade is followed by running: node tools/asset-mime-table.js
const fs = require("node:fs");
const path = require("node:path");

const root = path.join(__dirname, "..");
const cli = fs.readFileSync(path.join(root, "node_modules/wrangler/wrangler-dist/cli.js"), "utf8");

function table(marker) {
  const start = cli.indexOf(marker);
  if (start < 0) throw new Error(`no ${marker} in the wrangler bundle`);
  const open = cli.indexOf("{", cli.indexOf("= {", start));
  const close = cli.indexOf("};", open);
  return JSON.parse(cli.slice(open, close + 1));
}

const version = /\/mime@([0-9.]+)\/node_modules\/mime\/dist\/types\/standard\.js/.exec(cli)[1];
const standard = table("mime/dist/types/standard.js\"() {");
const other = table("mime/dist/types/other.js\"() {");
const types = {};
// mime's define(): starred extensions are not mapped; a later conflicting one is an error.
for (const map of [standard, other]) {
  for (let [type, extensions] of Object.entries(map)) {
    type = type.toLowerCase();
    for (let extension of extensions) {
      extension = extension.toLowerCase();
      if (extension.startsWith("*")) continue;
      if (types[extension] && types[extension] !== type) throw new Error(`conflict on ${extension}`);
      types[extension] = type;
    }
  }
}
const withCharset = {};
for (const extension of Object.keys(types).sort()) {
  const type = types[extension];
  withCharset[extension] = type.startsWith("text/") && !type.includes("charset") ? `${type}; charset=utf-8` : type;
}
const out = { source: `mime ${version}, as bundled in wrangler`, types: withCharset };
fs.writeFileSync(path.join(root, "funcplane/assets/mime.json"), JSON.stringify(out, null, 0) + "\n");
console.log(`${Object.keys(withCharset).length} extensions from mime ${version}`);
