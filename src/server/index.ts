/** `outpost/server`: the self-hostable sync server, for embedding. The CLI is `outpost serve`. */
export { createServer, type OutpostServer, type ServerOptions } from './server.js';
export { mintToken, verifyAuthorization, type Grant, type Role } from './auth.js';
