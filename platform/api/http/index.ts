/** The REST API: HTTPS, client certificates and sessions, over the service layer. */
export { buildOpenApi, ERROR_SCHEMA } from './openapi.js';
export { OPERATION_ROUTES, type OperationRoute } from './routes.js';
export { BACKGROUND_HEADER, CSRF_HEADER, HTTP_DEFAULTS, type HttpApi, type HttpApiOptions, type HttpLimits, SESSION_COOKIE, serveHttpApi } from './server.js';
export { type SessionRoute, sessionRoutes } from './session-routes.js';
