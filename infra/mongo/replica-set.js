// One-shot job of docker-compose.cluster.yml (`mongo-replica-set`), run by mongosh --nodb: logs in to
// the first member as the operator (MongoDB's root, made by the mongo image on that member's first
// start), initiates the replica set NRW_MONGO_REPLICA_SET with the members NRW_MONGO_MEMBERS
// (host:port,...) if it is not initiated yet, and waits until it has one primary and every other
// member is a secondary. The password is read from its secret file, never from a command line.
// Idempotent: on a later `up` it finds the set initiated and only waits for it.
const fs = require('fs');

const name = process.env.NRW_MONGO_REPLICA_SET;
const members = process.env.NRW_MONGO_MEMBERS.split(',');
const password = fs.readFileSync('/run/secrets/mongo-operator.password', 'utf8').trim();
const admin = connect(`mongodb://operator:${encodeURIComponent(password)}@${members[0]}/admin` +
                      '?directConnection=true&authSource=admin');

function status() {
  try {
    return admin.adminCommand({replSetGetStatus: 1});
  } catch (e) {
    if (e.code === 94) return null;  // NotYetInitialized
    throw e;
  }
}

if (status() === null) {
  // The first member is preferred as primary (priority 2), so that the set is led where the
  // operator's account was made; any member can take over.
  admin.adminCommand({replSetInitiate: {
    _id: name,
    members: members.map((host, i) => ({_id: i, host, priority: i === 0 ? 2 : 1})),
  }});
  print(`mongo-replica-set: initiated ${name} with ${members.length} members`);
}

const deadline = Date.now() + 180 * 1000;
for (;;) {
  const s = status();
  const states = s ? s.members.map((m) => m.stateStr) : [];
  if (states.length === members.length && states.filter((x) => x === 'PRIMARY').length === 1 &&
      states.every((x) => x === 'PRIMARY' || x === 'SECONDARY')) {
    print(`mongo-replica-set: ${name} ready (${states.join(', ')})`);
    break;
  }
  if (Date.now() > deadline) {
    print(`mongo-replica-set: ${name} not ready after 180 s (${states.join(', ') || 'no status'})`);
    quit(1);
  }
  sleep(1000);
}
