/**
 * Loaded into a server process a test starts (`node --import tsx --import <this file>`): every
 * hosted database that has a table `t` and a table `audit` counts each insert into `t` that the
 * server applies, pushes included (a TEMP trigger, installed as the database opens; tenants
 * cannot create TEMP objects, and pushes run with the database's own triggers off). What a
 * killed process applied and committed stays counted, so a test reads how often each row was
 * applied across kills and restarts.
 */
import { HostedDatabase } from '../../src/server/hosted-database.js';

const AUDIT = 'CREATE TEMP TRIGGER IF NOT EXISTS t_audit AFTER INSERT ON main.t BEGIN INSERT INTO audit(id) VALUES (new.id); END';
const open = HostedDatabase.open.bind(HostedDatabase);

HostedDatabase.open = async (...args: Parameters<typeof HostedDatabase.open>): Promise<HostedDatabase> => {
  const db = await open(...args);
  try {
    db.execTrusted(AUDIT);
  } catch {
    // No table t yet: the test makes it, then restarts the server before it counts.
  }
  return db;
};
