/**
 * Typed inputs: a node property the user may take from the message, the flow or
 * global context, an environment variable, or type in (a string or a number).
 *
 * The editor saves such a property as two: the value (`timeout: "limits.wait"`)
 * and its source (`timeoutType: "flow"`). A flow saved before typed inputs has no
 * source property: the value is then what was typed, as before (str or num).
 *
 * Typed values are checked once, at deploy, by the node's config parser (so a bad
 * literal still shows as a bad configuration). Values from msg/flow/global/env are
 * read for each message and checked by the same parser; an error names the dialog
 * label and where the value came from ("Timeout (flow.limits.wait) must be ...").
 */
import type { Node, NodeAPI } from 'node-red';
import { VectorStoreError, messageOf } from '../../lib/errors';
import { describeValue } from '../../lib/schemas';

/** Sources read for each message. */
export const DYNAMIC_SOURCES = ['msg', 'flow', 'global', 'env'] as const;
export type DynamicSource = (typeof DYNAMIC_SOURCES)[number];

/** A property that may be typed in or taken from msg/flow/global/env. */
export interface TypedField {
  /** The node property, e.g. "timeout"; its source is `${property}Type`. */
  property: string;
  /** What may be typed in: a string or a number. */
  literal: 'str' | 'num';
  /** Catalog key of the dialog label, e.g. "deferrable-sensor.label.timeout". */
  labelKey: string;
  /** A message property that, when set, wins over this one: then it is not read at all (msg.collection). */
  overriddenBy?: string;
  /** A missing value leaves the property unset (the node's own fallback applies) instead of failing. */
  optional?: boolean;
}

/** A field whose value is read per message. */
interface DynamicField {
  property: string;
  source: DynamicSource;
  /** The msg property path, context key or variable name. */
  path: string;
  /** "Timeout (flow.limits.wait)": how errors name the field. */
  named: string;
  /** The label alone ("Timeout"), to replace the property name in the parser's messages. */
  label: string;
  overriddenBy?: string;
  optional?: boolean;
}

/**
 * The typed inputs of one node: the deploy-time definition (dynamic values
 * blanked so the parser applies its defaults) and, per message, the config with
 * the dynamic values read in.
 */
export class TypedInputs<C> {
  /** The node definition with every dynamic field blanked: parse this at deploy. */
  readonly deployDef: Record<string, unknown>;
  private readonly dynamic: DynamicField[] = [];

  constructor(
    private readonly RED: NodeAPI,
    private readonly node: Node,
    def: Record<string, unknown>,
    fields: readonly TypedField[],
  ) {
    this.deployDef = { ...def };
    for (const field of fields) {
      const source = def[`${field.property}Type`];
      // No source (a flow saved before typed inputs) or a literal one: the value is what was typed.
      if (source === undefined || source === null || source === '' || source === field.literal) continue;
      const label = RED._(field.labelKey);
      if (!(DYNAMIC_SOURCES as readonly unknown[]).includes(source)) {
        throw new VectorStoreError(
          'INVALID_INPUT',
          `${label} has a source this node does not read (${describeValue(source)}): choose ${field.literal === 'num' ? 'a number' : 'a string'}, msg, flow, global or env.`,
        );
      }
      const path = String(def[field.property] ?? '').trim();
      const named = `${label} (${source}.${path})`;
      if (path === '') {
        throw new VectorStoreError('INVALID_INPUT', `${label} is set to read ${source}, but names no ${source === 'env' ? 'variable' : 'property'}.`);
      }
      this.dynamic.push({
        property: field.property,
        source: source as DynamicSource,
        path,
        named,
        label,
        overriddenBy: field.overriddenBy,
        optional: field.optional,
      });
      this.deployDef[field.property] = undefined;
    }
  }

  /**
   * The config for one message: `deployConfig` itself when nothing is read per
   * message, else the definition with the values read from msg/flow/global/env,
   * through the same parser.
   */
  async configFor(msg: object, deployConfig: C, parse: (def: unknown) => C): Promise<C> {
    if (this.dynamic.length === 0) return deployConfig;
    const def: Record<string, unknown> = { ...this.deployDef };
    for (const field of this.dynamic) {
      if (field.overriddenBy !== undefined && isSet((msg as Record<string, unknown>)[field.overriddenBy])) continue;
      const value = await this.read(field, msg);
      if (!isSet(value) && field.optional) continue;
      if (!isSet(value)) {
        throw new VectorStoreError(
          'INVALID_INPUT',
          `${field.named} has no value${value === null ? ' (null)' : ''}: set it, or choose another source for ${field.label} in the node's dialog.`,
        );
      }
      if (typeof value === 'object') {
        throw new VectorStoreError('INVALID_INPUT', `${field.named} must be a string or a number (got ${describeValue(value)}).`);
      }
      // Check this field alone first, so the message names it and nothing else.
      try {
        parse({ ...this.deployDef, [field.property]: value });
      } catch (err) {
        throw new VectorStoreError('INVALID_INPUT', renamed(messageOf(err), field));
      }
      def[field.property] = value;
    }
    return parse(def);
  }

  private read(field: DynamicField, msg: object): Promise<unknown> {
    return new Promise((resolve, reject) => {
      try {
        // With a callback, flow/global contexts may live in an asynchronous store.
        this.RED.util.evaluateNodeProperty(field.path, field.source, this.node, msg as never, (err: Error | null, value: unknown) => {
          if (err) reject(new VectorStoreError('INVALID_INPUT', `${field.named} cannot be read: ${messageOf(err)}`));
          else resolve(value);
        });
      } catch (err) {
        reject(new VectorStoreError('INVALID_INPUT', `${field.named} cannot be read: ${messageOf(err)}`));
      }
    });
  }
}

function isSet(value: unknown): boolean {
  return value !== undefined && value !== null && !(typeof value === 'string' && value.trim() === '');
}

/** The parser's message names the property ("timeout must be ..."): name the label and the source instead. */
function renamed(message: string, field: DynamicField): string {
  // The parser names the field by its property, or by its dialog label in quotes (lib/schemas.ts CONFIG_FIELD_LABELS).
  const quoted = /^"[^"]+" /.exec(message);
  if (quoted) return `${field.named} ${message.slice(quoted[0].length)}`;
  for (const name of [field.property, field.label]) {
    if (message.startsWith(`${name} `)) return `${field.named}${message.slice(name.length)}`;
  }
  return `${field.named}: ${message}`;
}
