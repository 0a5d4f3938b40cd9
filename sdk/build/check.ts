/**
 * What `build` checks before it packs: the app's TypeScript type-checks under the app's own
 * tsconfig.json (with the app's typescript when it has one, else the SDK's), and every endpoint
 * name and egress target the code names as a literal exists in the manifest, with the right
 * direction or protocol. Both would otherwise be found only on a gateway: a type error as a
 * crash, a misspelt endpoint as E_CAPABILITY at the first emit.
 */
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as TS from 'typescript';
import { fail } from '../errors.js';
import type { AppManifest } from '../manifest.js';

/** The module apps import the SDK from (project.ts bundles it as external). */
const SDK_MODULE = 'isogate:sdk';

type TypeScript = typeof TS;

/** The app's typescript (its devDependency) when it has one, else the one the SDK brings. */
export async function loadTypeScript(projectDir: string): Promise<TypeScript> {
  try {
    const resolved = createRequire(path.join(projectDir, 'package.json')).resolve('typescript');
    return (await import(resolved)) as TypeScript;
  } catch {
    const own = (await import('typescript')) as TypeScript & { default?: TypeScript };
    return own.default ?? own;
  }
}

export interface Problem {
  file: string;
  line: number;
  column: number;
  text: string;
}

function where(dir: string, problem: Problem): string {
  return `${path.relative(dir, problem.file) || problem.file}:${problem.line}:${problem.column}`;
}

function summary(dir: string, problems: Problem[], limit = 10): string {
  // One line: a failure's message is printed escaped, a newline included.
  const shown = problems.slice(0, limit).map((problem) => `${where(dir, problem)}: ${problem.text.replace(/\s*\n\s*/g, ' ')}`);
  if (problems.length > limit) shown.push(`and ${problems.length - limit} more`);
  return shown.join('; ');
}

/**
 * Type-checks the project with its tsconfig.json; resolves with the problems (none: it checks).
 * A project without tsconfig.json is not type-checked (`checked: false`).
 */
export async function typeCheck(projectDir: string): Promise<{ checked: boolean; problems: Problem[] }> {
  const dir = path.resolve(projectDir);
  const configFile = path.join(dir, 'tsconfig.json');
  if (!(await fs.stat(configFile).catch(() => undefined))) return { checked: false, problems: [] };
  const ts = await loadTypeScript(dir);
  const read = ts.readConfigFile(configFile, ts.sys.readFile);
  const toProblem = (diagnostic: TS.Diagnostic): Problem => {
    const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
    if (!diagnostic.file || diagnostic.start === undefined) return { file: configFile, line: 1, column: 1, text: `TS${diagnostic.code}: ${text}` };
    const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    return { file: diagnostic.file.fileName, line: line + 1, column: character + 1, text: `TS${diagnostic.code}: ${text}` };
  };
  if (read.error) return { checked: true, problems: [toProblem(read.error)] };
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, dir, { noEmit: true }, configFile);
  if (parsed.errors.length) return { checked: true, problems: parsed.errors.map(toProblem) };
  const program = ts.createProgram({ rootNames: parsed.fileNames, options: { ...parsed.options, noEmit: true } });
  return { checked: true, problems: ts.getPreEmitDiagnostics(program).map(toProblem) };
}

/** Fails the build with every type error, each as file:line:column. */
export function assertTypeChecks(projectDir: string, result: { problems: Problem[] }): void {
  if (!result.problems.length) return;
  const dir = path.resolve(projectDir);
  throw fail(
    'E_TYPECHECK',
    `The app does not type-check (${result.problems.length} error${result.problems.length === 1 ? '' : 's'}): ${summary(dir, result.problems)}`,
    {
      errors: result.problems.map((problem) => ({ file: path.relative(dir, problem.file), line: problem.line, column: problem.column, text: problem.text })),
    },
  );
}

type Use = { kind: 'emit' | 'on' | 'fetch' | 'publish' | 'connect'; name: string; file: string; line: number; column: number };

/** The SDK's functions whose first argument names something in the manifest. */
const NAMED = new Set(['emit', 'on']);
const EGRESS = new Set(['fetch', 'publish', 'connect']);

/** Every call in `source` that names an endpoint or egress target with a literal, through `isogate:sdk`'s bindings. */
function usesIn(ts: TypeScript, file: string, source: string): Use[] {
  const tree = ts.createSourceFile(file, source, ts.ScriptTarget.ES2022, true);
  const named = new Map<string, string>(); // local name -> SDK export
  const namespaces = new Set<string>();
  for (const statement of tree.statements) {
    if (!ts.isImportDeclaration(statement) || !ts.isStringLiteral(statement.moduleSpecifier) || statement.moduleSpecifier.text !== SDK_MODULE) continue;
    const bindings = statement.importClause?.namedBindings;
    if (statement.importClause?.name) namespaces.add(statement.importClause.name.text);
    if (bindings && ts.isNamespaceImport(bindings)) namespaces.add(bindings.name.text);
    if (bindings && ts.isNamedImports(bindings)) {
      for (const element of bindings.elements) named.set(element.name.text, (element.propertyName ?? element.name).text);
    }
  }
  const uses: Use[] = [];
  /** The SDK export an expression is (`emit`, `sdk.emit`, `egress`, `sdk.egress`), if it is one. */
  const exportOf = (node: TS.Expression): string | undefined => {
    if (ts.isIdentifier(node)) return named.get(node.text);
    if (ts.isPropertyAccessExpression(node) && ts.isIdentifier(node.expression) && namespaces.has(node.expression.text)) return node.name.text;
    return undefined;
  };
  const visit = (node: TS.Node): void => {
    if (ts.isCallExpression(node)) {
      const first = node.arguments[0];
      let kind: Use['kind'] | undefined;
      const callee = node.expression;
      const direct = exportOf(callee);
      if (direct && NAMED.has(direct)) kind = direct as Use['kind'];
      else if (ts.isPropertyAccessExpression(callee) && EGRESS.has(callee.name.text) && exportOf(callee.expression) === 'egress')
        kind = callee.name.text as Use['kind'];
      if (kind && first && (ts.isStringLiteral(first) || ts.isNoSubstitutionTemplateLiteral(first))) {
        const { line, character } = tree.getLineAndCharacterOfPosition(first.getStart(tree));
        uses.push({ kind, name: first.text, file, line: line + 1, column: character + 1 });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(tree);
  return uses;
}

const PROTOCOL_OF: Record<string, string> = { fetch: 'https', publish: 'mqtts', connect: 'tls' };

/**
 * Checks the literal endpoint names and egress targets in `files` (the app's own sources, as
 * the bundler read them) against the manifest. Names built at run time are left to the gateway.
 */
export async function checkManifestReferences(projectDir: string, manifest: AppManifest, files: string[]): Promise<void> {
  const dir = path.resolve(projectDir);
  const ts = await loadTypeScript(dir);
  const endpoints = new Map((manifest.endpoints ?? []).map((endpoint) => [endpoint.name, endpoint]));
  const targets = new Map((manifest.egress ?? []).map((target) => [target.name, target]));
  const names = (direction: string): string =>
    [...endpoints.values()]
      .filter((e) => e.direction === direction)
      .map((e) => `"${e.name}"`)
      .join(', ') || 'none';
  const problems: Problem[] = [];
  for (const file of files) {
    for (const use of usesIn(ts, file, await fs.readFile(file, 'utf8'))) {
      const problem = (text: string): void => {
        problems.push({ file: use.file, line: use.line, column: use.column, text });
      };
      if (use.kind === 'emit' || use.kind === 'on') {
        const direction = use.kind === 'emit' ? 'source' : 'destination';
        const endpoint = endpoints.get(use.name);
        if (!endpoint)
          problem(`${use.kind}("${use.name}"): manifest.json declares no endpoint "${use.name}" (its ${direction} endpoints: ${names(direction)})`);
        else if (endpoint.direction !== direction)
          problem(`${use.kind}("${use.name}"): "${use.name}" is a ${endpoint.direction} endpoint in manifest.json; ${use.kind} needs a ${direction}`);
      } else {
        const target = targets.get(use.name);
        const protocol = PROTOCOL_OF[use.kind]!;
        if (!target) {
          const declared = [...targets.keys()].map((name) => `"${name}"`).join(', ') || 'none';
          problem(`egress.${use.kind}("${use.name}"): manifest.json declares no egress target "${use.name}" (its targets: ${declared})`);
        } else if (target.protocol !== protocol)
          problem(`egress.${use.kind}("${use.name}"): the target is ${target.protocol} in manifest.json; ${use.kind} needs ${protocol}`);
      }
    }
  }
  if (problems.length) {
    throw fail('E_MANIFEST_REFERENCE', `The code names what its manifest does not declare: ${summary(dir, problems)}`, {
      errors: problems.map((problem) => ({ file: path.relative(dir, problem.file), line: problem.line, column: problem.column, text: problem.text })),
    });
  }
}
