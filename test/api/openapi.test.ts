/**
 * The OpenAPI 3.1 document (issue 16, part 1): served at /api/v1/openapi.json, every route the
 * router serves documented and every documented route served, each operation's parameters the
 * very schema the service layer checks, and every error code with its status.
 */
import { strict as assert } from 'node:assert';
import { OPERATION_ROUTES } from '../../platform/api/http/index.js';
import { OPERATIONS } from '../../platform/api/operations.js';
import { ERROR_CODES } from '../../sdk/errors.js';
import { compileSchema } from '../../sdk/schema.js';
import { apiPki, type Harness, startHarness } from './harness.js';

describe('REST API OpenAPI document', function () {
  this.timeout(60_000);
  let harness: Harness;

  before(async () => {
    harness = await startHarness();
  });
  after(async () => {
    await harness.close();
  });

  it('is served to a client with a certificate, without a session', async () => {
    const answer = await harness.client(apiPki().user).call('GET', '/openapi.json');
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json, harness.api.openapi);
    assert.equal((answer.json as { openapi: string }).openapi, '3.1.0');
  });

  it('documents every route the router serves, and serves every route it documents', () => {
    const served = harness.api.routes.map((route) => `${route.method} ${route.path}`).sort();
    const paths = harness.api.openapi.paths as Record<string, Record<string, unknown>>;
    const documented = Object.entries(paths)
      .flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    assert.deepEqual(served, documented);
    assert.equal(new Set(served).size, served.length, 'no route is served twice');
  });

  it("takes each operation's parameters from the schema the service layer checks, split into path, query and body", () => {
    const paths = harness.api.openapi.paths as Record<
      string,
      Record<
        string,
        {
          parameters: { name: string; in: string; schema: unknown }[];
          requestBody?: { content: Record<string, { schema: { properties: Record<string, unknown> } }> };
        }
      >
    >;
    for (const route of OPERATION_ROUTES) {
      const documented = paths[route.path]![route.method.toLowerCase()]!;
      const schema = OPERATIONS[route.operation]!.params as { properties: Record<string, unknown> };
      const fixed = Object.keys(route.fixed ?? {});
      // A route whose body is a file takes that parameter from the body and others from headers.
      const fromHeader = new Map(Object.entries(route.consumes?.headers ?? {}).map(([name, header]) => [header, name]));
      const named = (parameter: { name: string }): string => fromHeader.get(parameter.name) ?? parameter.name;
      if (route.consumes) assert.ok(documented.requestBody?.content['application/octet-stream'], `${route.path} documents its file body`);
      const given = [
        ...documented.parameters.map(named),
        ...(route.consumes ? [route.consumes.body] : []),
        ...Object.keys(documented.requestBody?.content['application/json']?.schema.properties ?? {}),
      ].sort();
      assert.deepEqual(
        given,
        Object.keys(schema.properties)
          .filter((name) => !fixed.includes(name))
          .sort(),
        `${route.method} ${route.path}`,
      );
      for (const parameter of documented.parameters)
        assert.equal(parameter.schema, schema.properties[named(parameter)], `${route.method} ${route.path} ${parameter.name}`);
    }
  });

  it('lists every error code with the status the API answers it with, and each schema in it compiles', () => {
    const codes = harness.api.openapi['x-error-codes'] as Record<string, { status: number }>;
    assert.deepEqual(Object.keys(codes).sort(), Object.keys(ERROR_CODES).sort());
    for (const [code, spec] of Object.entries(ERROR_CODES)) assert.equal(codes[code]!.status, spec.status);
    const walk = (value: unknown): void => {
      if (!value || typeof value !== 'object') return;
      for (const [key, inner] of Object.entries(value)) {
        if (key === 'schema') compileSchema(inner as object);
        else walk(inner);
      }
    };
    walk(harness.api.openapi.paths);
  });
});
