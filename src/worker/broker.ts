/**
 * The broker between the tabs of one database: a SharedWorker that each page starts (worker/
 * client.ts) where `SharedWorker` exists, and keeps talking to (tabs.ts). It runs no SQLite
 * (a SharedWorker cannot open OPFS sync access handles in every browser, nor start a dedicated
 * worker in Chrome or Safari): the engine stays in the dedicated worker of the tab that holds
 * the database lock (seat.ts). The broker only knows which contexts are alive and which one
 * runs the engine, and gives each follower's page a MessageChannel port to that engine's
 * worker (the engine's page passes its end on to its worker), so calls and answers go straight
 * from page to engine worker instead of through a broadcast that every tab receives.
 *
 * - A context `join`s holding its lifetime lock (`clientLockName`); the broker asks for that
 *   lock and forgets the context when it is granted (the context died or closed).
 * - An `engine` registration links every other joined context to it; a later `join` is linked
 *   at once. A `retired` engine (closed in order) or a dead one is linked to nobody.
 * - The broker holds `brokerLockName` for its life: if it dies (its process crashed), the
 *   contexts learn it from that lock and go back to the broadcast (tabs.ts), so nothing waits
 *   on a broker that is gone. Ports it handed out keep working without it.
 */
import { type BrokerMessage, type BrokerRequest, brokerLockName, clientLockName } from './tabs-protocol.js';

interface Database {
  members: Map<string, MessagePort>;
  engine: { engineId: string; clientId: string } | null;
}

const brokerId = crypto.randomUUID();
const databases = new Map<string, Database>();
/** Names whose broker lock this broker holds (taken before it says hello for that database). */
const locked = new Map<string, Promise<void>>();

function database(name: string): Database {
  let db = databases.get(name);
  if (!db) {
    db = { members: new Map(), engine: null };
    databases.set(name, db);
  }
  return db;
}

/** Takes this broker's lifetime lock for `name`, once; resolves when it is held. */
function holdLock(name: string): Promise<void> {
  let held = locked.get(name);
  if (!held) {
    held = new Promise<void>((granted) => {
      void navigator.locks.request(brokerLockName(name, brokerId), () => {
        granted();
        return new Promise<void>(() => {});
      });
    });
    locked.set(name, held);
  }
  return held;
}

function send(port: MessagePort, message: BrokerMessage, transfer: Transferable[] = []): void {
  port.postMessage(message, transfer);
}

/** Gives follower `clientId` a port to the engine of `db`, and the engine the other end. */
function link(db: Database, clientId: string): void {
  const engine = db.engine;
  if (!engine || engine.clientId === clientId) return;
  const enginePort = db.members.get(engine.clientId);
  const followerPort = db.members.get(clientId);
  if (!enginePort || !followerPort) return;
  const { port1, port2 } = new MessageChannel();
  send(enginePort, { type: 'client', clientId, port: port1 }, [port1]);
  send(followerPort, { type: 'link', engineId: engine.engineId, port: port2 }, [port2]);
}

/** Forgets `clientId` once its lifetime lock is free: it died or closed. */
function watch(name: string, db: Database, clientId: string): void {
  void navigator.locks
    .request(clientLockName(name, clientId), () => {
      db.members.delete(clientId);
      if (db.engine?.clientId === clientId) db.engine = null;
    })
    .catch(() => {});
}

function receive(port: MessagePort, request: BrokerRequest): void {
  if (request.type === 'hello') {
    // Without Web Locks here the contexts could not learn of the broker's death: decline.
    if (typeof navigator.locks?.request !== 'function') send(port, { type: 'unavailable' });
    else void holdLock(request.name).then(() => send(port, { type: 'broker', brokerId }));
    return;
  }
  const db = database(request.name);
  if (request.type === 'join') {
    db.members.set(request.clientId, port);
    watch(request.name, db, request.clientId);
    link(db, request.clientId);
  } else if (request.type === 'engine') {
    db.engine = { engineId: request.engineId, clientId: request.clientId };
    for (const clientId of db.members.keys()) link(db, clientId);
  } else if (db.engine?.engineId === request.engineId) {
    db.engine = null;
  }
}

// A SharedWorker's global scope: each page's `new SharedWorker(...)` arrives as a connect event.
(self as unknown as { onconnect: (event: MessageEvent) => void }).onconnect = (event) => {
  const port = event.ports[0];
  if (!port) return;
  port.onmessage = (e: MessageEvent<BrokerRequest>) => receive(port, e.data);
};
