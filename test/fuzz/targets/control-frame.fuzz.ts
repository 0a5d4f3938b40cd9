/** Control-socket request lines (platform/api/control-socket.ts), split and bounded as the socket does. */
import { MAX_REQUEST_LINE_BYTES, parseControlRequest } from '../../../platform/api/control-socket.js';
import { refused } from '../refusal.js';

export function fuzz(data: Buffer): void {
  for (const line of data.toString('utf8').split('\n')) {
    if (Buffer.byteLength(line) > MAX_REQUEST_LINE_BYTES || !line.trim()) continue;
    try {
      const request = parseControlRequest(line);
      if (typeof request.op !== 'string') throw new Error('an accepted request has no op');
    } catch (error) {
      refused(error);
    }
  }
}
