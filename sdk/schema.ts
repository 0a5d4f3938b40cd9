/**
 * JSON Schema validation with ajv (draft 2020-12), shared by the manifest check, the
 * configuration document, endpoint messages and app configuration. Compiled validators are
 * cached by the schema's text so that a schema seen again (every message on a route, every
 * configuration change) is never compiled twice.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import * as addFormatsModule from 'ajv-formats';
import { LRUCache } from 'lru-cache';
import { fail, type ErrorCode } from './errors.js';

// ajv-formats is CommonJS; under NodeNext its default import is the module object.
const addFormats = (addFormatsModule as unknown as { default: (ajv: Ajv2020) => Ajv2020 }).default;

export interface SchemaViolation {
  /** JSON pointer of the offending value ("" for the document itself). */
  pointer: string;
  /** The schema keyword that failed (required, maximum, pattern, ...). */
  rule: string;
  message: string;
}

function newAjv(): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: false, allowUnionTypes: true });
  addFormats(ajv);
  return ajv;
}

const sharedAjv = newAjv();
const compiled = new LRUCache<string, ValidateFunction>({ max: 512 });

/** Compiles (or returns the cached validator of) a schema; a schema that does not compile is `code`. */
export function compileSchema(schema: object, code: ErrorCode = 'E_BAD_REQUEST', what = 'schema'): ValidateFunction {
  const key = JSON.stringify(schema);
  let validate = compiled.get(key);
  if (!validate) {
    try {
      // A schema with its own $id would collide when compiled twice in one Ajv instance.
      validate = Object.hasOwn(schema, '$id') ? newAjv().compile(schema) : sharedAjv.compile(schema);
    } catch (error) {
      throw fail(code, `The ${what} is not a valid JSON Schema: ${(error as Error).message}`);
    }
    compiled.set(key, validate);
  }
  return validate;
}

export function describeViolations(errors: ErrorObject[] | null | undefined): SchemaViolation[] {
  return (errors ?? []).map((error) => {
    let pointer = error.instancePath;
    let message = error.message ?? 'is not valid';
    if (error.keyword === 'required') pointer = `${pointer}/${String(error.params.missingProperty)}`;
    if (error.keyword === 'additionalProperties') {
      pointer = `${pointer}/${String(error.params.additionalProperty)}`;
      message = 'is not an allowed property';
    }
    if (error.keyword === 'enum') message = `must be one of ${JSON.stringify(error.params.allowedValues)}`;
    return { pointer, rule: error.keyword, message };
  });
}

export function formatViolations(violations: SchemaViolation[], limit = 5): string {
  const shown = violations.slice(0, limit).map((v) => `${v.pointer || '/'} ${v.message} (${v.rule})`);
  const more = violations.length > limit ? `; and ${violations.length - limit} more` : '';
  return shown.join('; ') + more;
}

/** Validates `value` and throws `code` naming each JSON pointer and rule broken. */
export function assertValid(validate: ValidateFunction, value: unknown, code: ErrorCode, what: string): void {
  if (validate(value)) return;
  const violations = describeViolations(validate.errors);
  throw fail(code, `${what} is not valid: ${formatViolations(violations)}`, { violations });
}
