// A flowpair client in Node.js: the contract is loaded from protos/ at run time
// (@grpc/proto-loader), nothing generated or shared with the Python code.
//
//   node journey.js --orchestrator HOST:PORT --discovery HOST:PORT --token-file FILE \
//        --account UUID --engagement UUID --csv FILE
//
// Uploads the CSV, creates a discovery flow on it, waits for the approval gate, approves the
// suggested mapping with its etag (waiving what the export lacks), follows the flow to
// COMPLETED, lists the inventory, and then sends a bad request and decodes the
// google.rpc.BadRequest in its status details. Prints one JSON line per step; exits non-zero
// when a step fails.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const PROTOS = path.resolve(__dirname, '..', '..', 'protos');

function args() {
  const out = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    out[argv[i].replace(/^--/, '')] = argv[i + 1];
  }
  for (const required of ['orchestrator', 'discovery', 'token-file', 'account', 'engagement', 'csv']) {
    if (!out[required]) {
      throw new Error(`--${required} is required`);
    }
  }
  return out;
}

function say(step, fields) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + '\n');
}

function load() {
  const definition = protoLoader.loadSync(
    ['flowpair/v1/orchestrator.proto', 'flowpair/v1/discovery.proto'],
    { includeDirs: [PROTOS], keepCase: true, longs: Number, enums: String, defaults: true },
  );
  return grpc.loadPackageDefinition(definition).flowpair.v1;
}

// The status details (google.rpc.Status in the grpc-status-details-bin trailer), decoded with
// the upstream protos the repository carries in protos/google/rpc.
function details(error) {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => path.join(PROTOS, target);
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
  const raw = error.metadata.get('grpc-status-details-bin')[0];
  if (!raw) {
    return [];
  }
  const status = root.lookupType('google.rpc.Status').decode(raw);
  return status.details.map((any) => {
    const name = any.type_url.split('/').pop();
    return { type: name, value: root.lookupType(name).toObject(root.lookupType(name).decode(any.value)) };
  });
}

function unary(client, method, request, metadata) {
  return new Promise((resolve, reject) => {
    client[method](request, metadata, { deadline: Date.now() + 30000 }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

function upload(disc, metadata, file) {
  return new Promise((resolve, reject) => {
    const call = disc.UploadImportData(metadata, (error, response) =>
      error ? reject(error) : resolve(response),
    );
    call.write({ metadata: { file_name: path.basename(file) } });
    const data = fs.readFileSync(file);
    for (let at = 0; at < data.length; at += 1 << 20) {
      call.write({ chunk: data.subarray(at, at + (1 << 20)) });
    }
    call.end();
  });
}

// Follow WatchFlow until the flow's status is one of `statuses` (read with GetFlow after
// each event: the stream says what happened, the flow where it is now).
function watchUntil(orch, metadata, name, statuses) {
  return new Promise((resolve, reject) => {
    const stream = orch.WatchFlow({ name }, metadata);
    let done = false;
    const check = async () => {
      const { flow } = await unary(orch, 'GetFlow', { name }, metadata);
      if (!done && statuses.includes(flow.status)) {
        done = true;
        stream.cancel();
        resolve(flow);
      }
    };
    stream.on('data', () => check().catch(reject));
    stream.on('error', (error) => {
      if (!done && error.code !== grpc.status.CANCELLED) reject(error);
    });
    stream.on('end', () => check().catch(reject));
    check().catch(reject);
  });
}

async function main() {
  const a = args();
  const v1 = load();
  const orch = new v1.OrchestratorService(a.orchestrator, grpc.credentials.createInsecure());
  const disc = new v1.DiscoveryService(a.discovery, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${fs.readFileSync(a['token-file'], 'utf8').trim()}`);
  metadata.set('x-client-account-id', a.account);
  metadata.set('x-engagement-id', a.engagement);

  const uploaded = await upload(disc, metadata, a.csv);
  say('upload', { import: uploaded.data_import.name, rows: uploaded.data_import.row_count });

  const { flow } = await unary(orch, 'CreateFlow', {
    flow: { type: 'FLOW_TYPE_DISCOVERY', display_name: 'node client', data_import: uploaded.data_import.name },
  }, metadata);
  say('create', { flow: flow.name, status: flow.status });

  const gated = await watchUntil(orch, metadata, flow.name, ['FLOW_STATUS_WAITING_FOR_APPROVAL', 'FLOW_STATUS_FAILED']);
  say('gate', { status: gated.status, history_sequence: gated.history_sequence });
  if (gated.status !== 'FLOW_STATUS_WAITING_FOR_APPROVAL') throw new Error(`flow ${gated.status}`);

  const listed = await unary(disc, 'ListFieldMappings', { master_flow: flow.name }, metadata);
  const approved = await unary(disc, 'UpdateFieldMappings', {
    master_flow: flow.name,
    etag: listed.etag,
    approve: true,
    waive_required_attributes: listed.missing_required_attributes,
  }, metadata);
  const states = {};
  for (const m of approved.mappings) states[m.state] = (states[m.state] || 0) + 1;
  say('approve', { approved: approved.approved, states });

  const done = await watchUntil(orch, metadata, flow.name, ['FLOW_STATUS_COMPLETED', 'FLOW_STATUS_FAILED', 'FLOW_STATUS_CANCELLED']);
  say('done', { status: done.status });
  if (done.status !== 'FLOW_STATUS_COMPLETED') throw new Error(`flow ${done.status}`);

  const assets = await unary(disc, 'ListAssets', { page_size: 1000 }, metadata);
  const types = {};
  for (const asset of assets.assets) types[asset.asset_type] = (types[asset.asset_type] || 0) + 1;
  say('inventory', { assets: Number(assets.total_size), types });

  try {
    await unary(orch, 'CreateFlow', { flow: { type: 'FLOW_TYPE_DISCOVERY', display_name: 'x\u0007' } }, metadata);
    throw new Error('a bad request was accepted');
  } catch (error) {
    if (error.code !== grpc.status.INVALID_ARGUMENT) throw error;
    const decoded = details(error);
    const bad = decoded.find((d) => d.type === 'google.rpc.BadRequest');
    const info = decoded.find((d) => d.type === 'google.rpc.ErrorInfo');
    say('bad_request', {
      code: grpc.status[error.code],
      fields: bad ? bad.value.field_violations.map((f) => f.field) : [],
      reason: info ? info.value.reason : null,
      domain: info ? info.value.domain : null,
    });
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`${error.stack || error}\n`);
    process.exit(1);
  },
);
