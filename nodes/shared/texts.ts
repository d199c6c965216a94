/**
 * Status texts from the message catalog, without i18next on every message: each
 * key's template is looked up once through RED._ (with every value standing for
 * its own placeholder), then filled in here. RED._ costs tens of microseconds a
 * call, which showed in the per-message overhead the benchmarks measure.
 */
import type { NodeAPI } from 'node-red';

export type Values = Record<string, string | number>;
export type Texts = (key: string, values?: Values) => string;

export function catalogTexts(RED: NodeAPI): Texts {
  const templates = new Map<string, string>();
  return (key, values = {}) => {
    let template = templates.get(key);
    if (template === undefined) {
      const placeholders = Object.fromEntries(Object.keys(values).map((name) => [name, `__${name}__`]));
      template = RED._(key, placeholders);
      templates.set(key, template);
    }
    return template.replace(/__(\w+)__/g, (whole, name: string) => (name in values ? String(values[name]) : whole));
  };
}
