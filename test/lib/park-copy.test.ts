// What a wait parks of its message, and the copy its progress messages are built from.
import should from 'should';
import { copyJson, parkable } from '../../nodes/shared/messages';

describe('parked messages and their copies', () => {
  it('a copy is independent of the parked message, to any depth', () => {
    const { parked } = parkable({ topic: 't', meta: { tags: ['a', { b: 1 }] }, n: 1.5, none: null });
    const copy = copyJson(parked) as { meta: { tags: Array<string | { b: number }> } };
    should(copy).eql(parked);
    (copy.meta.tags[1] as { b: number }).b = 2;
    copy.meta.tags.push('c');
    should(parked).eql({ topic: 't', meta: { tags: ['a', { b: 1 }] }, n: 1.5, none: null });
  });

  it('a "__proto__" key read from JSON stays a key of the copy, never its prototype', () => {
    const parked = JSON.parse('{"__proto__": {"polluted": true}, "x": 1}') as Record<string, unknown>;
    const copy = copyJson(parked) as Record<string, unknown>;
    should(Object.getPrototypeOf(copy)).equal(Object.prototype);
    should(Object.keys(copy)).eql(['__proto__', 'x']);
    should((copy as { polluted?: unknown }).polluted).be.undefined();
    should(JSON.stringify(copy)).equal('{"__proto__":{"polluted":true},"x":1}');
  });
});
