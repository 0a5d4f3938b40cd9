/**
 * Two ways to make the gateway's disk fail, for the reliability tests:
 *
 * - `mountSmallDisk`: a real tmpfs of a few MiB (we run as root in CI), filled to the last page
 *   by a filler file and freed again, so ENOSPC comes from the kernel, partial writes included;
 * - `FaultyDisk`: errors injected through the file-system interface every subsystem uses
 *   (DataDir's handles and renames), for the faults a tmpfs cannot make (EIO on write, fsync,
 *   rename) and for machines where mounting is not allowed.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import sinon from 'sinon';
import { DataDir } from '../../platform/durable/safe-path.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

const run = promisify(execFile);
const FILLER = 'filler.bin';

export interface SmallDisk {
  /** The mount point; subsystems' folders go below it. */
  readonly dir: string;
  /** Writes the filler until the kernel answers ENOSPC: afterwards not even one more page fits. */
  fill(): Promise<void>;
  /** Removes the filler: the space returns. */
  free(): Promise<void>;
  unmount(): Promise<void>;
}

/** A tmpfs of `bytes`, or the reason none could be mounted (not root, no mount in a container). */
export async function mountSmallDisk(bytes: number): Promise<SmallDisk | { reason: string }> {
  const dir = await makeTempDir('isogate-small-disk-');
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', dir]);
  } catch (error) {
    await removeDir(dir);
    return { reason: `mount -t tmpfs failed (${(error as Error).message.split('\n')[0]})` };
  }
  const filler = path.join(dir, FILLER);
  return {
    dir,
    async fill() {
      const handle = await fs.open(filler, 'a');
      const block = Buffer.alloc(4096, 0x5a);
      try {
        for (;;) await handle.write(block);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
      } finally {
        await handle.close();
      }
    },
    async free() {
      await fs.rm(filler, { force: true });
    },
    async unmount() {
      await run('umount', [dir]);
      await removeDir(dir);
    },
  };
}

export type FaultOperation = 'open' | 'write' | 'sync' | 'rename';
export type FaultCode = 'ENOSPC' | 'EIO';

export interface Fault {
  operation: FaultOperation;
  code: FaultCode;
  /** Which files (absolute paths) fail; every file when not given. */
  path?: RegExp;
  /** A write that fails after half its bytes reached the file, as a filling disk does. */
  partial?: boolean;
}

const WRITES = ['write', 'writeFile', 'appendFile'] as const;
const SYNCS = ['sync', 'datasync'] as const;

function errno(code: FaultCode, syscall: string, file: string): NodeJS.ErrnoException {
  const text = code === 'ENOSPC' ? 'no space left on device' : 'i/o error';
  return Object.assign(new Error(`${code}: ${text}, ${syscall} '${file}'`), { code, syscall, path: file, errno: code === 'ENOSPC' ? -28 : -5 });
}

/** Errors injected into DataDir (every data-directory write goes through it) until `restore`. */
export class FaultyDisk {
  readonly #faults = new Set<Fault>();
  readonly #sandbox = sinon.createSandbox();
  /** How many operations failed because of an injected fault. */
  failures = 0;

  constructor() {
    const disk = this;
    const open = DataDir.prototype.open;
    this.#sandbox.stub(DataDir.prototype, 'open').callsFake(async function (this: DataDir, ...args: Parameters<DataDir['open']>) {
      const file = this.path(args[0]);
      disk.#check('open', file, 'open');
      return disk.#wrap(await open.apply(this, args), file, args[1].endsWith('dsync'));
    });
    const rename = DataDir.prototype.rename;
    this.#sandbox.stub(DataDir.prototype, 'rename').callsFake(async function (this: DataDir, from: string, to: string) {
      disk.#check('rename', this.path(to), 'rename');
      return rename.call(this, from, to);
    });
  }

  inject(fault: Fault): Fault {
    this.#faults.add(fault);
    return fault;
  }

  /** The disk works again (space returned, the fault gone). */
  clear(): void {
    this.#faults.clear();
  }

  restore(): void {
    this.clear();
    this.#sandbox.restore();
  }

  #matching(operation: FaultOperation, file: string): Fault | undefined {
    for (const fault of this.#faults) if (fault.operation === operation && (fault.path?.test(file) ?? true)) return fault;
    return undefined;
  }

  #check(operation: FaultOperation, file: string, syscall: string): void {
    const fault = this.#matching(operation, file);
    if (!fault) return;
    this.failures += 1;
    throw errno(fault.code, syscall, file);
  }

  /** `dsync`: opened O_DSYNC, where a write is its own sync, and a failing sync fails the write. */
  #wrap(handle: FileHandle, file: string, dsync: boolean): FileHandle {
    const rawWrite = handle.write.bind(handle) as (buffer: Uint8Array, offset: number, length: number, position: number) => Promise<unknown>;
    for (const method of WRITES) {
      const original = handle[method].bind(handle) as (...args: unknown[]) => Promise<unknown>;
      Object.defineProperty(handle, method, {
        configurable: true,
        value: async (...args: unknown[]) => {
          const fault = this.#matching('write', file);
          if (!fault) {
            // The bytes reach the file (the page cache) and the sync that is part of the write fails.
            const written = await original(...args);
            if (dsync) this.#check('sync', file, 'write');
            return written;
          }
          this.failures += 1;
          if (fault.partial) {
            const data = args[0];
            let bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data as Uint8Array);
            if (method === 'write' && typeof args[1] === 'number' && typeof args[2] === 'number') bytes = bytes.subarray(args[1], args[1] + args[2]);
            const position = method === 'write' && typeof args[3] === 'number' ? args[3] : (await handle.stat()).size;
            const half = Math.max(1, bytes.length >> 1);
            await rawWrite(bytes, 0, half, position);
          }
          throw errno(fault.code, 'write', file);
        },
      });
    }
    for (const method of SYNCS) {
      const original = handle[method].bind(handle);
      Object.defineProperty(handle, method, {
        configurable: true,
        value: async () => {
          this.#check('sync', file, 'fsync');
          return original();
        },
      });
    }
    return handle;
  }
}
