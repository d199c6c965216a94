/**
 * One way for every node to show what it is doing: blue ring while busy, blue dot
 * while waiting, green on success, red with the reason on failure. Texts are kept
 * short: the editor cuts long statuses.
 */
import type { Node } from 'node-red';

const MAX_TEXT = 64;

function shorten(text: string): string {
  return text.length <= MAX_TEXT ? text : text.slice(0, MAX_TEXT - 1) + '…';
}

export class NodeStatus {
  constructor(private readonly node: Node) {}

  busy(text: string): void {
    this.node.status({ fill: 'blue', shape: 'ring', text: shorten(text) });
  }

  waiting(text: string): void {
    this.node.status({ fill: 'blue', shape: 'dot', text: shorten(text) });
  }

  ok(text: string): void {
    this.node.status({ fill: 'green', shape: 'dot', text: shorten(text) });
  }

  warn(text: string): void {
    this.node.status({ fill: 'yellow', shape: 'ring', text: shorten(text) });
  }

  fail(text: string): void {
    this.node.status({ fill: 'red', shape: 'ring', text: shorten(text) });
  }

  clear(): void {
    this.node.status({});
  }
}
