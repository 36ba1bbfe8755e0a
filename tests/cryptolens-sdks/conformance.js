// Drives the official Cryptolens Node SDK (npm `cryptolens`) against a running Keyturn.
// Environment: KEYTURN_URL (http://127.0.0.1:PORT), KEYTURN_ADMIN (an admin token), NODE_PATH
// pointing at the node_modules the SDK was installed into.
// Prints one `PASS name` / `FAIL name: detail` line per check and `N passed, M failed` last.
//
// npm cryptolens 1.0.11's Activate signature: (token, rsaPubKey, ProductId, Key, MachineCode,
// FieldsToReturn, Metadata, FloatingTimeInterval, MaxOverdraft, LicenseServerUrl).

const { Key, Helpers, Data } = require('cryptolens');

const URL = process.env.KEYTURN_URL.replace(/\/$/, '');
const ADMIN = process.env.KEYTURN_ADMIN;
const LIMIT = 'Cannot activate the new device as the limit has been reached.';
const KEY_OR_PERMISSION = 'Not enough permission and/or key not found.';
const DATA_PERMISSIONS = ['adddataobject', 'listdataobjects', 'removedataobject', 'setintvalue',
  'setstringvalue', 'incrementintvalue', 'decrementintvalue'].map((m) => `cryptolens:${m}`);

let passed = 0;
let failed = 0;

function check(name, ok, detail = '') {
  if (ok) {
    passed += 1;
    console.log(`PASS ${name}`);
  } else {
    failed += 1;
    console.log(`FAIL ${name}: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`);
  }
}

async function native(method, path, body) {
  const res = await fetch(URL + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return (res.headers.get('content-type') || '').includes('json') ? JSON.parse(text) : text;
}

// A Cryptolens method the SDK has no function for, as a form POST.
async function raw(method, params) {
  const res = await fetch(`${URL}/api/${method}`, { method: 'POST', body: new URLSearchParams(params) });
  return res.json();
}

async function rejection(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return e.message;
  }
}

// The SDK logs from some helpers; keep the report readable.
function quietly(f) {
  const log = console.log;
  const warn = console.warn;
  console.log = () => {};
  console.warn = () => {};
  try {
    return f();
  } finally {
    console.log = log;
    console.warn = warn;
  }
}

async function quietlyAsync(f) {
  const log = console.log;
  const warn = console.warn;
  console.log = () => {};
  console.warn = () => {};
  try {
    return await f();
  } finally {
    console.log = log;
    console.warn = warn;
  }
}

async function run() {
  const product = await native('POST', '/v1/products', { name: 'Node SDK', features: ['basic', 'pro', 'team'] });
  const pid = product.id;
  const pub = (await native('GET', `/v1/products/${pid}/public-key?format=rsa-xml`)).trim();
  const methods = ['activate', 'deactivate', 'getkey', 'createkey', 'createtrialkey', 'extendlicense',
    'addfeature', 'removefeature', 'changenotes'];
  const token = (await native('POST', '/v1/tokens', {
    name: 'node sdk', permissions: methods.map((m) => `cryptolens:${m}`), product_id: pid,
  })).token;

  // CreateKey sends CustomerId=null, AllowedMachines=null: Keyturn reads them as "not given".
  const created = await quietlyAsync(() => Key.CreateKey(token, pid, 30, 'from node', false, null, false, 1,
    null, 0, 1, false, true, false, false, false, false, false, false, false, false, URL));
  check('CreateKey returns a key', created && created.result === 0 && typeof created.key === 'string', created);
  const key = created.key;

  const lic = await Key.Activate(token, pub, pid, key, 'node-machine', 0, false, 0, 0, URL);
  check('Activate verifies the signature', lic && lic.Key === key);
  check('features F1..F8', lic.F1 === false && lic.F2 === true && lic.F3 === false, [lic.F1, lic.F2, lic.F3]);
  check('expiry 30 days after creation', lic.Expires - lic.Created === 30 * 86400 && lic.Period === 30);
  check('HasNotExpired', Helpers.HasNotExpired(lic) === true);
  check('HasFeature', Helpers.HasFeature(lic, 2) === true && Helpers.HasFeature(lic, 1) === false);
  check('model 1 machine objects', JSON.stringify(Object.keys(lic.ActivatedMachines[0])) === '["Mid","IP","Time"]'
    && lic.ActivatedMachines[0].IP === '127.0.0.1', lic.ActivatedMachines);
  check('IsOnRightMachineCustom', quietly(() => Helpers.IsOnRightMachineCustom(lic, 'node-machine', false, false))
    && !quietly(() => Helpers.IsOnRightMachineCustom(lic, 'elsewhere', false, false)));
  check('DataObjects never null', Array.isArray(lic.DataObjects) && lic.DataObjects.length === 0);
  check('notes', lic.Notes === 'from node', lic.Notes);

  // FieldsToReturn 64 hides the other machines (here: none), 8 the notes; both stay present.
  const masked = await Key.Activate(token, pub, pid, key, 'node-machine', 64 + 8, false, 0, 0, URL);
  check('FieldsToReturn hides fields, which stay present and signed', masked.Notes === null
    && masked.ActivatedMachines.map((m) => m.Mid).join() === 'node-machine' && masked.Key === key, masked);

  const limit = await rejection(Key.Activate(token, pub, pid, key, 'second-machine', 0, false, 0, 0, URL));
  check('machine limit reached', limit === LIMIT, limit);

  const saved = Helpers.SaveAsString(lic);
  const loaded = quietly(() => Helpers.LoadFromString(pub, saved, 3));
  check('SaveAsString / LoadFromString', loaded !== null && loaded.Key === key);
  const forged = JSON.parse(saved);
  forged.licenseKey = Buffer.from(Buffer.from(forged.licenseKey, 'base64').toString().replace('"F1":false', '"F1":true ')).toString('base64');
  check('LoadFromString refuses a forged license', quietly(() => Helpers.LoadFromString(pub, JSON.stringify(forged), 3)) === null);

  const got = await Key.GetKey(token, pub, pid, key, 0, false, URL);
  check('GetKey', got.Key === key && got.ActivatedMachines.length === 1);

  const message = await Key.Deactivate(token, pid, key, 'node-machine', false, null, URL);
  check('Deactivate', message === '', message);
  const now = await Key.Activate(token, pub, pid, key, 'second-machine', 0, false, 0, 0, URL);
  check('freed seat is reusable', now.ActivatedMachines.map((m) => m.Mid).join() === 'second-machine');

  await Key.ExtendLicense(token, pid, key, 5, URL);
  await Key.AddFeature(token, pid, key, 3, URL);
  await Key.RemoveFeature(token, pid, key, 2, URL);
  await Key.ChangeNotes(token, pid, key, 'changed', URL);
  const changed = await Key.GetKey(token, pub, pid, key, 0, false, URL);
  check('ExtendLicense, AddFeature, RemoveFeature, ChangeNotes',
    changed.Expires - lic.Expires === 5 * 86400 && changed.F3 === true && changed.F2 === false && changed.Notes === 'changed');

  // Floating with overdraft.
  const fl = (await quietlyAsync(() => Key.CreateKey(token, pid, 10, '', false, null, false, 1, null, 0, 1,
    false, false, false, false, false, false, false, false, false, false, URL))).key;
  const a = await Key.Activate(token, pub, pid, fl, 'float-a', 0, false, 120, 0, URL);
  check('floating activation', quietly(() => Helpers.IsOnRightMachineCustom(a, 'float-a', true, false)));
  const full = await rejection(Key.Activate(token, pub, pid, fl, 'float-b', 0, false, 120, 0, URL));
  check('floating limit', full === LIMIT, full);
  const b = await Key.Activate(token, pub, pid, fl, 'float-b', 0, false, 120, 1, URL);
  check('overdraft seat', quietly(() => Helpers.IsOnRightMachineCustom(b, 'float-b', true, true)));
  await Key.Deactivate(token, pid, fl, 'float-a', true, null, URL);
  await Key.Deactivate(token, pid, fl, 'float-b', true, null, URL);
  const c = await Key.Activate(token, pub, pid, fl, 'float-c', 0, false, 120, 0, URL);
  check('floating Deactivate frees seats', c.ActivatedMachines.map((m) => m.Mid).join() === 'floating:float-c');

  // Trial key.
  const trial = await quietlyAsync(() => Key.CreateTrialKey(token, pid, 'node-trial', URL));
  const t = await Key.Activate(token, pub, pid, trial, 'node-trial', 0, false, 0, 0, URL);
  check('CreateTrialKey', typeof trial === 'string' && t.Period === 15 && t.Expires - t.Created === 15 * 86400);

  // Blocked key (blocked through the native API: npm 1.0.11 has no BlockKey).
  const listing = await native('GET', `/v1/licenses?product_id=${pid}&limit=500`);
  const row = listing.data.find((l) => l.key === key);
  await native('POST', `/v1/licenses/${row.id}/block`, {});
  const blocked = await rejection(Key.Activate(token, pub, pid, key, 'second-machine', 0, false, 0, 0, URL));
  check('blocked key refuses activation', blocked === 'The key is blocked and cannot be accessed.', blocked);

  await dataObjects(token, pid, pub);
  await messages(pid);
  await expiry(token, pid, pub);

  // Errors.
  const badToken = await rejection(Key.Activate('kt_nope', pub, pid, key, 'm', 0, false, 0, 0, URL));
  check('bad token', badToken === 'Unable to authenticate.', badToken);
  const other = await native('POST', '/v1/products', { name: 'Not this token', features: [] });
  const locked = await rejection(Key.Activate(token, pub, other.id, key, 'm', 0, false, 0, 0, URL));
  check('product lock', locked === 'Access denied.', locked);
  const wrongKey = await rejection(Key.Activate(token, pub, pid, 'NOPEN-NOPEN-NOPEN-NOPEN', 'm', 0, false, 0, 0, URL));
  check('unknown key', wrongKey === 'Could not find the key.', wrongKey);
  const otherPub = (await native('GET', `/v1/products/${other.id}/public-key?format=rsa-xml`)).trim();
  const wrongPub = await rejection(Key.GetKey(token, otherPub, pid, fl, 0, false, URL));
  check('signature fails under another key', wrongPub === 'Signature verification failed.', wrongPub);
}

async function dataObjects(token, pid, pub) {
  const dtoken = (await native('POST', '/v1/tokens', {
    name: 'node data', key_lock: -1, permissions: [...DATA_PERMISSIONS, 'cryptolens:getkey'],
  })).token;
  const key = (await quietlyAsync(() => Key.CreateKey(token, pid, 30, '', false, null, false, 1, null, 0, 1,
    false, false, false, false, false, false, false, false, false, false, URL))).key;

  // Data.AddDataObjectToKey(token, ProductId, Key, CheckForDuplicates, Name, StringValue, IntValue, url);
  // the SDK sends StringValue=null as "null", which reads as "not given".
  const id = await Data.AddDataObjectToKey(dtoken, pid, key, false, 'credits', null, 7, URL);
  check('Data.AddDataObjectToKey resolves with the id', Number.isInteger(id) && id > 0, id);
  const dup = await rejection(Data.AddDataObjectToKey(dtoken, pid, key, true, 'credits', null, 0, URL));
  check('CheckForDuplicates refuses a second one', typeof dup === 'string' && dup.length > 0, dup);
  const r = await raw('data/IncrementIntValueToKey', {
    token: dtoken, ProductId: pid, Key: key, Id: id, IntValue: 3, EnableBound: true, Bound: 10,
  });
  check('IncrementIntValueToKey within the bound (raw)', r.result === 0, r);
  const past = await raw('data/IncrementIntValueToKey', {
    token: dtoken, ProductId: pid, Key: key, Name: 'credits', IntValue: 1, EnableBound: true, Bound: 10,
  });
  check('IncrementIntValueToKey past the bound (raw)', past.result === 1, past);

  const lic = await Key.GetKey(dtoken, pub, pid, key, 0, false, URL);
  check('the signed license carries its data objects', JSON.stringify(lic.DataObjects)
    === JSON.stringify([{ Id: id, Name: 'credits', StringValue: '', IntValue: 10 }]), lic.DataObjects);
  const listed = await raw('data/ListDataObjectsToKey', { token: dtoken, ProductId: pid, Key: key });
  check('ListDataObjectsToKey (raw)', listed.result === 0 && listed.dataObjects.length === 1
    && listed.dataObjects[0].intValue === 10, listed);

  const unlocked = (await native('POST', '/v1/tokens', { name: 'unlocked', permissions: DATA_PERMISSIONS })).token;
  const refused = await rejection(Data.AddDataObjectToKey(unlocked, pid, key, false, 'x', null, 0, URL));
  check('a token without key lock -1 is refused', refused === KEY_OR_PERMISSION, refused);
}

// Expired keys: returned as Cryptolens returns them, or blocked when the product says so.
async function expiry(token, pid, pub) {
  const key = (await quietlyAsync(() => Key.CreateKey(token, pid, 30, '', false, null, false, 1, null, 0, 1,
    false, false, false, false, false, false, false, false, false, false, URL))).key;
  const row = await native('GET', `/v1/licenses/by-key/${key}`);
  await native('PATCH', `/v1/licenses/${row.id}`, { expires: '2020-01-01T00:00:00Z' });
  const lic = await Key.Activate(token, pub, pid, key, 'expired-machine', 0, false, 0, 0, URL);
  check('an expired key is returned; HasNotExpired says it expired',
    lic.Expires === 1577836800 && Helpers.HasNotExpired(lic) === false, lic.Expires);
  await native('PATCH', `/v1/products/${pid}`, { block_expired_licenses: true });
  const blocked = await rejection(Key.Activate(token, pub, pid, key, 'expired-machine', 0, false, 0, 0, URL));
  check('with block expired licenses, an expired key answers blocked',
    blocked === 'The key is blocked and cannot be accessed.', blocked);
  const deactivated = await rejection(Key.Deactivate(token, pid, key, 'expired-machine', false, null, URL));
  check('with block expired licenses, Deactivate answers blocked',
    deactivated === 'The key is blocked and cannot be accessed.', deactivated);
}

async function messages(pid) {
  await native('POST', '/v1/messages', { content: 'Node update', channel: 'node', product_id: pid });
  const mtoken = (await native('POST', '/v1/tokens', {
    name: 'node messages', permissions: ['cryptolens:getmessages'], product_id: pid,
  })).token;
  const r = await raw('message/GetMessages', { token: mtoken, Channel: 'node', Time: 0 });
  check('GetMessages (raw)', r.result === 0 && r.messages.length === 1 && r.messages[0].content === 'Node update'
    && Number.isInteger(r.messages[0].created) && r.messages[0].channel === 'node', r);
}

run()
  .catch((e) => check('node conformance ran to the end', false, String(e && e.stack || e)))
  .finally(() => {
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  });
