/**
 * The two ways the HTTP sync transport sends in Node (src/sync/http-send.ts): through `fetch`
 * (the default, and every browser's) and over node:http (what outpost/node passes). Transport
 * tests run against both.
 */
import { nodeSend } from '../../src/node/http-send.js';
import type { HttpSend } from '../../src/sync/http-send.js';

export const SENDERS: { name: string; send: HttpSend | undefined }[] = [
  { name: 'fetch', send: undefined },
  { name: 'node:http', send: nodeSend },
];
