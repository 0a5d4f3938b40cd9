/**
 * The OpenAPI 3.1 document of the REST API, generated from the routes and the operations'
 * parameter schemas (the same ones every call is checked against), so that it cannot drift
 * from what the gateway accepts. Served at /api/v1/openapi.json.
 */
import { ERROR_CODES } from '../../../sdk/errors.js';
import { OPERATIONS } from '../operations.js';
import { takesBody } from './params.js';
import { type OperationRoute, pathParameters } from './routes.js';
import type { SessionRoute } from './session-routes.js';

export const ERROR_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['code', 'message', 'details'],
  properties: {
    code: { enum: Object.keys(ERROR_CODES) },
    message: { type: 'string' },
    details: { type: 'object' },
  },
};

type Schema = Record<string, unknown> & { properties?: Record<string, unknown>; required?: string[] };

interface Documented {
  method: string;
  path: string;
  summary: string;
  operationId: string;
  roles: readonly string[];
  params: Schema;
  response: Record<string, unknown>;
  produces: NonNullable<OperationRoute['produces']>;
  consumes?: OperationRoute['consumes'];
  streams: boolean;
  session: boolean;
  /** Parameters the route sets itself, not the caller. */
  fixed: readonly string[];
}

function documented(operationRoutes: readonly OperationRoute[], sessionRoutes: readonly SessionRoute[]): Documented[] {
  return [
    ...sessionRoutes.map((route) => ({
      method: route.method,
      path: route.path,
      summary: route.summary,
      operationId: `${route.method.toLowerCase()}${route.path.replace(/[{}]/g, '').replace(/\/(\w)/g, (_, c: string) => c.toUpperCase())}`,
      roles: route.roles,
      params: route.params as Schema,
      response: route.response,
      produces: 'json' as const,
      streams: false,
      session: route.session !== 'none',
      fixed: [],
    })),
    ...operationRoutes.map((route) => ({
      method: route.method,
      path: route.path,
      summary: OPERATIONS[route.operation]!.summary,
      operationId: route.fixed?.log ? `${route.operation}.${String(route.fixed.log)}` : route.operation,
      roles: route.roles,
      params: OPERATIONS[route.operation]!.params as Schema,
      response: route.response ?? {},
      produces: route.produces ?? 'json',
      ...(route.consumes ? { consumes: route.consumes } : {}),
      streams: route.streams === true,
      session: true,
      fixed: Object.keys(route.fixed ?? {}),
    })),
  ];
}

function without(schema: Schema, names: readonly string[]): Schema {
  const properties = Object.fromEntries(Object.entries(schema.properties ?? {}).filter(([key]) => !names.includes(key)));
  const required = (schema.required ?? []).filter((key) => !names.includes(key));
  return { ...schema, properties, required };
}

export function buildOpenApi(operationRoutes: readonly OperationRoute[], sessionRoutes: readonly SessionRoute[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of documented(operationRoutes, sessionRoutes)) {
    const inPath = pathParameters(route.path);
    const properties = route.params.properties ?? {};
    const parameters: unknown[] = inPath.map((name) => ({ name, in: 'path', required: true, schema: properties[name] ?? { type: 'string' } }));
    const fromHeaders = Object.entries(route.consumes?.headers ?? {});
    for (const [name, header] of fromHeaders) {
      parameters.push({
        name: header,
        in: 'header',
        required: (route.params.required ?? []).includes(name),
        schema: properties[name] ?? { type: 'string' },
        description:
          "Text beyond ASCII as UTF-8'' and its percent-encoded UTF-8 (RFC 8187), since browsers send only ISO-8859-1 headers; raw UTF-8 bytes are read as UTF-8 too",
      });
    }
    const rest = without(route.params, [...inPath, ...route.fixed, ...fromHeaders.map(([name]) => name), ...(route.consumes ? [route.consumes.body] : [])]);
    if (!takesBody(route.method)) {
      for (const [name, schema] of Object.entries(rest.properties ?? {})) {
        const array = (schema as { type?: string }).type === 'array';
        parameters.push({
          name,
          in: 'query',
          required: (rest.required ?? []).includes(name),
          schema,
          ...(array ? { style: 'form', explode: false, description: 'comma-separated, or the parameter repeated' } : {}),
        });
      }
    }
    const success =
      route.produces === 'csv'
        ? { 'text/csv': { schema: { type: 'string' } } }
        : route.produces === 'text'
          ? { 'text/plain': { schema: { type: 'string' } } }
          : route.produces === 'binary'
            ? { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } }
            : route.produces === 'archive'
              ? { 'application/gzip': { schema: { type: 'string', contentMediaType: 'application/gzip' } } }
              : {
                  'application/json': { schema: route.response },
                  ...(route.streams
                    ? { 'application/x-ndjson': { schema: { description: 'One {"progress": ...} line per update, then {"result": ...} or {"error": ...}' } } }
                    : {}),
                };
    paths[route.path] ??= {};
    paths[route.path]![route.method.toLowerCase()] = {
      operationId: route.operationId,
      summary: route.summary,
      'x-roles': route.roles,
      parameters,
      ...(route.consumes
        ? {
            requestBody: {
              required: true,
              description: `The file itself (at most ${route.consumes.maxBytes} bytes)`,
              content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } },
            },
          }
        : takesBody(route.method)
          ? { requestBody: { required: false, content: { 'application/json': { schema: rest } } } }
          : {}),
      ...(route.session ? {} : { security: [{ clientCertificate: [] }] }),
      responses: {
        '200': { description: 'Done', content: success },
        default: {
          description: "Refused or failed: the code says why, and the status is that code's",
          content: { 'application/json': { schema: ERROR_SCHEMA } },
        },
      },
    };
  }
  paths['/openapi.json'] = {
    get: {
      operationId: 'openapi',
      summary: 'This document',
      'x-roles': ['admin', 'user'],
      parameters: [],
      security: [{ clientCertificate: [] }],
      responses: { '200': { description: 'The OpenAPI document', content: { 'application/json': { schema: { type: 'object' } } } } },
    },
  };
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'isogate REST API',
      version,
      description:
        "Two factors: a client certificate signed by the gateway's root on the TLS connection, then POST /session with name and password. Changing requests carry X-CSRF-Token. Errors are {code, message, details}; each code has one HTTP status (x-error-codes).",
    },
    servers: [{ url: '/api/v1' }],
    security: [{ clientCertificate: [], session: [] }],
    components: {
      securitySchemes: {
        clientCertificate: { type: 'mutualTLS', description: "A client certificate signed by the gateway's root and bound to the account" },
        session: { type: 'apiKey', in: 'cookie', name: '__Host-isogate-session' },
        csrf: { type: 'apiKey', in: 'header', name: 'X-CSRF-Token' },
      },
      schemas: { Error: ERROR_SCHEMA },
    },
    'x-error-codes': Object.fromEntries(Object.entries(ERROR_CODES).map(([code, spec]) => [code, { status: spec.status, summary: spec.summary }])),
    paths,
  };
}
