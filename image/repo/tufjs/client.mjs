// client.mjs runs tuf-js's Updater once against a TUF repository and prints
// one JSON line on stdout:
//
//   {"ok":true,"target":"a.img","file":"/…/a.img","length":12,"sha256":"…","versions":{…}}
//   {"ok":false,"error":"ExpiredMetadataError","classes":[…],"message":"…","versions":{…}}
//
// error is the class name of what tuf-js threw (err.constructor.name: its
// error classes leave err.name at "Error"). Exit status: 0 accepted, 1
// refused, 2 for a usage error of this script (also one JSON line).
//
// Its only argument is a JSON object:
//
//   {"metadataUrl": "http://127.0.0.1:port/metadata/",
//    "targetsUrl":  "http://127.0.0.1:port/targets/",
//    "trustedRoot": "/path/to/root.json",   // copied into metadataDir when it has no root.json
//    "metadataDir": "/path/to/cache/metadata",
//    "targetDir":   "/path/to/cache/targets",
//    "target":      "name/in/targets.json"}  // optional: download and verify it
//
// Set DEBUG=tuf:* to have tuf-js log its requests on stderr.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tuf from 'tuf-js';

const { Updater } = tuf;

// TargetNotFoundError is this script's, not tuf-js's: getTargetInfo returns
// undefined for a target that no targets role lists.
class TargetNotFoundError extends Error {}

// UsageError is this script's too: a bad argument, exit status 2.
class UsageError extends Error {}

function classes(err) {
  const names = [];
  for (let p = Object.getPrototypeOf(err); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    if (p.constructor && p.constructor.name) names.push(p.constructor.name);
  }
  return names;
}

function versions(updater) {
  // trustedSet is TypeScript-private but a plain field at run time.
  const set = updater?.trustedSet;
  const out = {};
  for (const role of ['root', 'timestamp', 'snapshot', 'targets']) {
    try {
      const md = role === 'root' ? set?.root : set?.getRole(role);
      if (md) out[role] = md.signed.version;
    } catch {
      // no trusted metadata for that role yet
    }
  }
  return out;
}

function print(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function parseArgs(argv) {
  if (argv.length !== 1) {
    throw new UsageError('usage: node client.mjs \'{"metadataUrl":…,"targetsUrl":…,"trustedRoot":…,"metadataDir":…,"targetDir":…,"target":…}\'');
  }
  let a;
  try {
    a = JSON.parse(argv[0]);
  } catch (err) {
    throw new UsageError(`argument is not JSON: ${err.message}`);
  }
  for (const k of ['metadataUrl', 'targetsUrl', 'metadataDir', 'targetDir']) {
    if (typeof a[k] !== 'string' || a[k] === '') throw new UsageError(`missing ${k}`);
  }
  return a;
}

function prepare(a) {
  fs.mkdirSync(a.metadataDir, { recursive: true });
  fs.mkdirSync(a.targetDir, { recursive: true });
  const root = path.join(a.metadataDir, 'root.json');
  if (!fs.existsSync(root)) {
    if (!a.trustedRoot) throw new UsageError(`no ${root} and no trustedRoot given`);
    fs.copyFileSync(a.trustedRoot, root);
  }
}

async function sha256(file) {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk);
  return h.digest('hex');
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
    prepare(args);
  } catch (err) {
    print({ ok: false, error: err.constructor.name, classes: classes(err), message: String(err.message) });
    return 2;
  }
  let updater;
  try {
    updater = new Updater({
      metadataBaseUrl: args.metadataUrl,
      targetBaseUrl: args.targetsUrl,
      metadataDir: args.metadataDir,
      targetDir: args.targetDir,
      // No retries: a refusal must be reported at once, not after back-off.
      config: { fetchRetries: 0, fetchTimeout: 30000 },
    });
    await updater.refresh();
    if (!args.target) {
      print({ ok: true, versions: versions(updater) });
      return 0;
    }
    const info = await updater.getTargetInfo(args.target);
    if (!info) throw new TargetNotFoundError(`no target ${args.target} in the repository`);
    const file = await updater.downloadTarget(info);
    const st = fs.statSync(file);
    print({
      ok: true,
      target: args.target,
      file,
      length: st.size,
      sha256: await sha256(file),
      versions: versions(updater),
    });
    return 0;
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    print({
      ok: false,
      error: e.constructor.name,
      classes: classes(e),
      message: String(e.message),
      versions: versions(updater),
    });
    return 1;
  }
}

process.exitCode = await main();
